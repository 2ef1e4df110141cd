"""Shapes, dtypes and determinism through every module of the model core."""
import numpy as np
import pytest
import torch

from vljepa_ros.models import (
    VLJEPA,
    FrameFeatureCache,
    GenerativeDecoder,
    GenerativeDecoderConfig,
    PhraseBank,
    PredictorConfig,
    RetrievalDecoder,
    VLJEPAConfig,
    XEncoderConfig,
    YEncoderConfig,
    available_backbones,
    build_backbone,
    generative_decoder_loss,
    preprocess_frame,
)
from vljepa_ros.models.text import BertBlock, BertEmbeddings, masked_mean, tokenize
from vljepa_ros.sim.captions import state_caption
from vljepa_ros.world_model import QueryTemplates, Ranked, WorldModel

D, G, T = 32, 2, 3


pytestmark = pytest.mark.usefixtures("one_torch_thread")



@pytest.fixture(scope="module")
def model(minilm):
    torch.manual_seed(0)
    cfg = VLJEPAConfig(
        x_encoder=XEncoderConfig(grid=G, window_frames=T, image_size=160),
        predictor=PredictorConfig(layers=2, embed_dim=D),
        y_encoder=YEncoderConfig(embed_dim=D),
    )
    return VLJEPA(cfg).eval()


def test_backbone_registry_and_shapes():
    assert "efficientnet_lite0" in available_backbones()
    with pytest.raises(KeyError, match="unknown backbone"):
        build_backbone("no_such_backbone", 160)
    for size, hw in ((160, 5), (224, 7)):
        bb = build_backbone("efficientnet_lite0", size)
        assert bb.image_size == size and bb.out_channels == 1280
        assert not bb.training and not any(p.requires_grad for p in bb.parameters())
        bb.train()  # must stay in eval mode (BatchNorm statistics frozen)
        assert not bb.training and not any(m.training for m in bb.modules())
        y = bb(torch.zeros(2, 3, size, size))
        assert y.shape == (2, 1280, hw, hw) and y.dtype == torch.float32 and not y.requires_grad


def test_preprocess_frame():
    img = np.zeros((120, 200, 3), dtype=np.uint8)
    img[..., 0] = 255
    x = preprocess_frame(img, 160)
    assert x.shape == (3, 160, 160) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.ones(160, 160)) and torch.allclose(x[1], -torch.ones(160, 160))
    with pytest.raises(ValueError):
        preprocess_frame(img.astype(np.float32), 160)
    with pytest.raises(ValueError):
        preprocess_frame(img[..., :1], 160)


def test_bert_port_matches_transformers(minilm):
    # Our BertEmbeddings + BertBlock must reproduce transformers' MiniLM exactly.
    ids, mask = tokenize(minilm.tokenizer, ["a red cube on the table", "lamp"])
    emb = BertEmbeddings.from_hf(minilm.model)
    blocks = [BertBlock.from_hf(minilm.model, i) for i in range(6)]
    with torch.no_grad():
        x = emb(ids)
        for b in blocks:
            x = b(x, mask)
        ref = minilm.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    assert torch.allclose(masked_mean(x, mask), masked_mean(ref, mask), atol=1e-5)
    assert torch.allclose(x[mask], ref[mask], atol=1e-4)


def test_x_encoder_tokens(model):
    imgs = torch.rand(4, 3, 160, 160) * 2 - 1
    f = model.encode_frames(imgs)
    assert f.shape == (4, 1280, G, G) and f.dtype == torch.float32 and not f.requires_grad
    w = f[:3][None]  # (1,T,C,g,g)
    tok = model.tokens_from_features(w)
    assert tok.shape == (1, T * G * G, 384)
    # a 1-frame window uses the newest time slot: equals the last frame's tokens of a full window
    tok1 = model.tokens_from_features(w[:, -1:])
    assert torch.allclose(tok1, tok[:, -G * G :])
    with pytest.raises(ValueError, match="at most"):
        model.tokens_from_features(f[None])  # 4 frames > T=3


def test_predict_encode_and_determinism(model):
    torch.manual_seed(1)
    w = torch.rand(2, T, 1280, G, G)
    p = model.predict(w, ["what is on the table?", "is the lamp on?"])
    assert p.shape == (2, D) and p.dtype == torch.float32
    assert torch.allclose(p.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert torch.equal(p, model.predict(w, ["what is on the table?", "is the lamp on?"]))  # eval: deterministic
    assert not torch.allclose(p[0], p[1])  # different window+query -> different prediction
    # batch independence: one row alone gives the same answer as in the padded batch
    assert torch.allclose(model.predict(w[:1], ["what is on the table?"]), p[:1], atol=1e-5)
    # second window (before -> after) changes the prediction and keeps the shape
    pa = model.predict(w, "what action happened?", before_window_features=w.flip(0))
    assert pa.shape == (2, D)
    assert not torch.allclose(pa, model.predict(w, "what action happened?"))
    y = model.encode_text(["a red cube", "the lamp is on", "a red cube"])
    assert y.shape == (3, D) and torch.allclose(y.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert torch.equal(y[0], y[2])
    with pytest.raises(ValueError):
        model.predict(w, ["only one query", "two", "three"])


def test_param_groups_and_counts(model):
    groups = model.param_groups(1e-3)
    names = [g["name"] for g in groups]
    assert names == ["main", "y_encoder"]
    assert groups[1]["lr"] == pytest.approx(1e-3 * 0.05)
    in_groups = {id(p) for g in groups for p in g["params"]}
    assert all(p.requires_grad for g in groups for p in g["params"])
    for p in model.x_encoder.backbone.parameters():
        assert id(p) not in in_groups
    for p in model.predictor.text_embeddings.parameters():
        assert id(p) not in in_groups
    # only the top Y-encoder layer trains
    assert [any(p.requires_grad for p in b.parameters()) for b in model.y_encoder.blocks] == [False] * 5 + [True]
    c = model.parameter_counts()
    assert c["trainable"] == sum(p.numel() for g in groups for p in g["params"])
    assert c["saved"] == c["trainable"]  # y head trainable here, so saved == trainable
    assert c["frozen"] > 20_000_000  # MiniLM embeddings + 5 layers + EfficientNet trunk


def test_frozen_y_encoder_when_multiplier_zero(minilm):
    cfg = VLJEPAConfig(
        x_encoder=XEncoderConfig(grid=1, window_frames=1),
        predictor=PredictorConfig(layers=1, embed_dim=16),
        y_encoder=YEncoderConfig(embed_dim=16, lr_multiplier=0.0),
    )
    m = VLJEPA(cfg)
    assert [g["name"] for g in m.param_groups(1e-3)] == ["main"]
    assert not any(p.requires_grad for p in m.y_encoder.parameters())
    # the (random, frozen) head is still stored so the checkpoint reproduces it
    assert {"y_encoder.head.weight", "y_encoder.head.bias"} <= set(m.trained_state_dict())


def test_phrase_bank_cache(model):
    bank = PhraseBank(model.y_encoder, ["a red cube", "the lamp is on"])
    e1 = bank.embeddings
    assert e1.shape == (2, D) and bank.embeddings is e1  # cached
    bank.texts = ["a red cube", "the lamp is off"]
    e2 = bank.embeddings
    assert e2 is not e1 and torch.equal(e2[0], e1[0]) and not torch.equal(e2[1], e1[1])
    # an in-place weight change (optimizer step) invalidates the cache
    head = model.y_encoder.head
    saved = head.bias.detach().clone()
    with torch.no_grad():
        head.bias.add_(0.5)
    try:
        assert not torch.equal(bank.embeddings, e2)
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)


def test_decoders(model):
    texts = ["a red cube", "the lamp is on", "the lamp is off"]
    bank = PhraseBank(model.y_encoder, texts)
    rd = RetrievalDecoder(bank, model.temperature)
    out = rd.decode(bank.embeddings)
    assert [o.text for o in out] == texts
    assert all(0 < o.confidence <= 1 for o in out)
    dec = GenerativeDecoder.from_texts(
        GenerativeDecoderConfig(embed_dim=D, width=32, layers=1, heads=2, max_len=6), texts, model.tokenizer
    )
    ids, _ = tokenize(model.tokenizer, texts)
    assert dec.vocab_size == len(set(ids.flatten().tolist()) | {0, 100, 101, 102})
    logits = dec(bank.embeddings, dec.to_sub(ids)[:, :-1])
    assert logits.shape == (3, ids.shape[1] - 1, dec.vocab_size)
    loss = generative_decoder_loss(dec, bank.embeddings, ids)
    assert loss.ndim == 0 and torch.isfinite(loss)
    sub, lp = dec.generate(bank.embeddings)
    assert sub.shape[0] == 3 and sub.shape[1] <= 6 and lp.shape == (3,)
    res = dec.decode(bank.embeddings)
    assert len(res) == 3 and all(isinstance(r.text, str) and 0 < r.confidence <= 1 for r in res)
    assert [r.text for r in res] == [r.text for r in dec.decode(bank.embeddings)]  # greedy = deterministic


def test_feature_cache():
    c = FrameFeatureCache(capacity=3)
    for i in range(5):
        assert c.push(float(i), torch.full((2, 1, 1), float(i)))
    assert not c.push(4.0, torch.zeros(2, 1, 1))  # duplicate stamp ignored
    assert not c.push(1.0, torch.zeros(2, 1, 1))  # out of order ignored
    assert len(c) == 3 and c.stamps == [2.0, 3.0, 4.0]
    f, s = c.latest(2)
    assert f.shape == (2, 2, 1, 1) and s == [3.0, 4.0] and f[-1, 0, 0, 0] == 4.0
    f, s = c.latest(5, until_s=3.5)
    assert s == [2.0, 3.0]
    assert c.get(3.0)[0, 0, 0] == 3.0 and c.get(9.0) is None
    with pytest.raises(LookupError):
        c.latest(1, until_s=0.5)


def test_world_model_api(model):
    states = ["a red cube on the table", "the lamp is on", "the table is empty"]
    actions = ["pick up the red cube", "switch the lamp on"]
    wm = WorldModel(model, states, actions, QueryTemplates(), window_frames=2, model_id="tiny@000000000000")
    with pytest.raises(LookupError):
        wm.state()
    calls = []
    orig = model.x_encoder.backbone.forward
    model.x_encoder.backbone.forward = lambda x: (calls.append(x.shape[0]), orig(x))[1]
    try:
        rng = np.random.default_rng(0)
        for i in range(4):
            wm.push_frame(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), 0.1 * i)
    finally:
        del model.x_encoder.backbone.forward
    assert calls == [1, 1, 1, 1]  # backbone once per frame, never re-run for the window
    w = wm.window()
    assert w.features.shape == (2, 1280, G, G) and w.stamps == pytest.approx((0.2, 0.3))
    r = wm.state(top_k=2)
    assert isinstance(r, Ranked) and len(r.labels) == 2 and set(r.labels) <= set(states)
    assert r.scores[0] >= r.scores[1] and r.embedding.shape == (D,)
    full = wm.state(top_k=10)
    assert len(full.labels) == 3 and sum(full.probabilities) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(wm.embed(wm.queries.state), full.embedding)
    a = wm.action_between(wm.window(until_s=0.1), wm.window())
    assert sorted(a.labels) == sorted(actions)
    o = wm.predict_outcome("switch the lamp on", candidates=["the lamp is on", "the lamp is off"])
    assert sorted(o.labels) == ["the lamp is off", "the lamp is on"]
    q = wm.ask("is the lamp on?", ["yes", "no"])
    assert sorted(q.labels) == ["no", "yes"] and sum(q.probabilities) == pytest.approx(1.0, abs=1e-5)
    reading = wm.read_state()
    assert reading.caption == state_caption(reading.state) and len(reading.state["objects"]) <= 3
    assert 0.0 < reading.confidence <= 1.0
    assert torch.allclose(reading.embedding, model.encode_text([reading.caption])[0], atol=1e-5)
    wm.set_state_bank(["x", "y"])
    assert sorted(wm.state().labels) == ["x", "y"]
    wm.set_action_bank(["push", "pull", "lift"])
    assert len(wm.action_between(w, w).labels) == 3


def test_world_model_reads_colour_and_shape_on_fact_views(minilm):
    """A reading_views model: read_state re-views the window's latest frame
    (one backbone pass of the two fact views), and its colour and shape
    questions see those views, the lamp and the state query the window."""
    from vljepa_ros.world_model import fact_view_windows, reading_pass

    torch.manual_seed(0)
    cfg = VLJEPAConfig(x_encoder=XEncoderConfig(grid=G, window_frames=T, image_size=160),
                       predictor=PredictorConfig(layers=2, embed_dim=D), y_encoder=YEncoderConfig(embed_dim=D),
                       reading_views=True)
    viewed = VLJEPA(cfg).eval()
    wm = WorldModel(viewed, ["the lamp is on", "the table is empty"], ["switch the lamp on"])
    rng = np.random.default_rng(1)
    for i in range(3):
        wm.push_frame(rng.integers(0, 256, (90, 120, 3), dtype=np.uint8), 0.1 * i)
    calls = []
    orig = viewed.x_encoder.backbone.forward
    viewed.x_encoder.backbone.forward = lambda x: (calls.append(x.shape[0]), orig(x))[1]
    try:
        reading = wm.read_state()
    finally:
        del viewed.x_encoder.backbone.forward
    assert calls == [1, 1] and reading.caption == state_caption(reading.state)  # a colour and a shape view
    window = wm.window()
    with pytest.raises(ValueError, match="fact views"):
        reading_pass(viewed, window.features[None])  # the views are not optional for this model
    with pytest.raises(ValueError, match="Window of this stream"):
        wm.read_state(window.features)  # bare features: no stamp to find the frame by
    views = fact_view_windows(viewed, wm._inputs.frame(window)[None], T)
    probs, _ = reading_pass(viewed, window.features[None], views=views)
    swapped, _ = reading_pass(viewed, window.features[None], views={"colour": views["shape"], "shape": views["colour"]})
    assert probs[0][-1] == pytest.approx(swapped[0][-1])  # the lamp looks at the window
    assert probs[0][0] != pytest.approx(swapped[0][0])  # a colour question at its view
    question = "what shape is the object on the back right?"
    asked = wm.ask(question, ["nothing", "cube", "ball", "cylinder"])  # ~/ask: a cell question on its fact view
    own = viewed.predict(views["shape"], [question])[0]
    assert torch.allclose(asked.embedding, own, atol=1e-5)
    wm.push_frame(np.zeros((90, 120, 3), np.uint8), 0.1)  # an older stamp: neither features nor input kept
    assert len(wm._inputs) == 3 and wm.window().stamps[-1] == pytest.approx(0.2)
    wm.clear_stream()
    assert len(wm.cache) == 0 and len(wm._inputs) == 0
