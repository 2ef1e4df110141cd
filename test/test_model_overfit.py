"""A tiny overfit: the whole training path can fit a handful of (window, text) pairs,
and the frozen backbone never changes."""
import pytest
import torch

from vljepa_ros.models import (
    VLJEPA,
    GenerativeDecoder,
    GenerativeDecoderConfig,
    PredictorConfig,
    VLJEPAConfig,
    XEncoderConfig,
    YEncoderConfig,
    generative_decoder_loss,
)
from vljepa_ros.models.text import tokenize

TEXTS = [
    "a red cube on the table",
    "a blue ball next to the lamp",
    "the lamp is on",
    "the lamp is off",
    "the robot arm holds a green cylinder",
    "the table is empty",
]
QUERY = "what is on the table?"
STEPS = 80
LOSS_BELOW = 0.1  # start: ~2.3 (= ln 6 + noise); reaches ~0.01 by step 60 with these settings


pytestmark = pytest.mark.usefixtures("one_torch_thread")



def _tiny(minilm):
    torch.manual_seed(0)
    cfg = VLJEPAConfig(
        x_encoder=XEncoderConfig(grid=2, window_frames=2, image_size=160),
        predictor=PredictorConfig(layers=1, embed_dim=64),
        y_encoder=YEncoderConfig(embed_dim=64),
    )
    return VLJEPA(cfg)


def _frames(n):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 160, 160, generator=g) * 2 - 1  # synthetic frames in [-1,1]


def test_overfit_handful_of_pairs(minilm):
    model = _tiny(minilm)
    N, T = len(TEXTS), 2
    feats = model.encode_frames(_frames(N * T)).view(N, T, 1280, 2, 2)  # frozen: computed once
    opt = torch.optim.AdamW(model.param_groups(1e-3))
    model.train()
    first = None
    for _ in range(STEPS):
        loss = model.loss(feats, QUERY, TEXTS, target_ids=torch.arange(N))
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
    model.eval()
    with torch.no_grad():
        final = model.loss(feats, QUERY, TEXTS).item()
        pred = model.predict(feats, QUERY)
        sims = pred @ model.encode_text(TEXTS).T
    assert first > 1.5
    assert final < LOSS_BELOW, f"loss {first:.3f} -> {final:.3f}"
    assert torch.equal(sims.argmax(1), torch.arange(N)), "retrieval on the training pairs must be 100%"
    assert torch.equal(sims.argmax(0), torch.arange(N)), "text->window retrieval must be 100%"


def test_generative_decoder_inverts_y_encoder(minilm):
    torch.manual_seed(0)
    model = _tiny(minilm).eval()
    with torch.no_grad():
        emb = model.encode_text(TEXTS)
    dec = GenerativeDecoder.from_texts(
        GenerativeDecoderConfig(embed_dim=64, width=64, layers=1, heads=2, max_len=12, noise_std=0.05),
        TEXTS,
        model.tokenizer,
    )
    ids, _ = tokenize(model.tokenizer, TEXTS)
    opt = torch.optim.AdamW(dec.parameters(), 3e-3)
    dec.train()
    for _ in range(150):
        loss = generative_decoder_loss(dec, emb, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    out = dec.decode(emb)
    assert [o.text for o in out] == TEXTS
    assert all(o.confidence > 0.9 for o in out)


def test_frozen_backbone_gets_no_gradient_and_never_changes(minilm):
    model = _tiny(minilm)
    bb = model.x_encoder.backbone
    before = {k: v.clone() for k, v in bb.state_dict().items()}  # weights AND BatchNorm running stats
    yb = model.y_encoder.blocks[0]
    y_before = {k: v.clone() for k, v in yb.state_dict().items()}
    opt = torch.optim.AdamW(model.param_groups(1e-2))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not any(id(p) in in_opt for p in bb.parameters())
    model.train()
    assert not bb.training  # model.train() leaves the frozen backbone in eval mode
    imgs = _frames(4)
    proj_before = model.x_encoder.proj.weight.detach().clone()
    for _ in range(3):  # end to end from pixels
        feats = model.encode_frames(imgs).view(2, 2, 1280, 2, 2)
        loss = model.loss(feats, QUERY, TEXTS[:2])
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in bb.parameters())
        assert all(p.grad is None for p in yb.parameters())  # frozen lower Y-encoder layer
        opt.step()
    after = bb.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(y_before[k], v) for k, v in yb.state_dict().items())
    assert not torch.equal(proj_before, model.x_encoder.proj.weight)  # ...while trainable parts did move
