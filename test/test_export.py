"""vljepa-export and the ONNX backends: parity with PyTorch on simulator frames
(the shipped model and a tiny random model of each backbone stage), the
torch-free runtime's pieces against the torch ones, and clear errors."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from vljepa_ros.assets import default_model_path
from vljepa_ros.checkpoint import _model_id, load_checkpoint, load_model, save_checkpoint
from vljepa_ros.export import export_onnx, main as export_main, render_episode
from vljepa_ros.models import (
    VLJEPA,
    GenerativeDecoder,
    GenerativeDecoderConfig,
    PredictorConfig,
    VLJEPAConfig,
    XEncoderConfig,
    YEncoderConfig,
    preprocess_frame,
)
from vljepa_ros.models.text import tokenize
from vljepa_ros.runtime import GRAPH_FILES, MANIFEST_FILE, BackendError, cache_export_dir, check_backend, onnx_model
from vljepa_ros.runtime.onnx_model import OnnxModel, WordPiece, load_onnx_checkpoint, preprocess_frame_np
from vljepa_ros.world_model import QueryTemplates

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO_ROOT = default_model_path().parents[2]


@pytest.fixture(autouse=True)
def _own_cache(tmp_path_factory, monkeypatch):
    # exports are looked for in the user's cache too: keep the tests off it
    monkeypatch.setenv("VLJEPA_ROS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))

COS = 0.999
TEXTS = ["a red cube at the front left of the table ; the room is lit", "the room is dark",
         "push the red cube back", "turn the lamp off"]


@pytest.fixture(scope="module")
def asset_export(tmp_path_factory):
    """The shipped model through the CLI: export + parity on the demo episode's
    first 30 frames, both ONNX backends (the report is read back as JSON)."""
    cache = tmp_path_factory.getbasetemp() / "cache"  # the tests' cache (_own_cache), where nodes look
    model_id = load_checkpoint(default_model_path(), with_decoder=False).model_id
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLJEPA_ROS_CACHE", str(cache))
        out = cache_export_dir(model_id)
    report = tmp_path_factory.mktemp("parity") / "parity.json"
    rc = export_main(["--out", str(out), "--max-frames", "30", "--render-size", "224", "--json", str(report)])
    return out, json.loads(report.read_text()), rc


def test_shipped_model_export_parity(asset_export):
    out, report, rc = asset_export
    assert rc == 0, report
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["model_id"] == load_checkpoint(default_model_path(), with_decoder=False).model_id
    assert set(manifest["graphs"]) == set(GRAPH_FILES)  # the shipped model has a generative decoder
    for backend in ("onnxruntime", "openvino"):
        r = report["backends"][backend]
        for key in ("frames_cos_min", "state_cos_min", "pair_cos_min", "text_cos_min", "stream_cos_min"):
            assert r[key] >= COS, (backend, key, r[key])
        assert r["events_torch"] >= 1 and r["events_identical"], r  # an initial event at least
        same, n = map(int, r["decoder_texts_same"].split("/"))
        assert same == n, r


def _tiny(tmp_path, stage: str):
    torch.manual_seed(1)
    cfg = VLJEPAConfig(
        x_encoder=XEncoderConfig(stage=stage, grid=4 if stage == "stride16" else 3, window_frames=3, image_size=96),
        predictor=PredictorConfig(layers=1, embed_dim=32),
        y_encoder=YEncoderConfig(embed_dim=32, trainable_layers=0, lr_multiplier=1.0),
    )
    model = VLJEPA(cfg)
    with torch.no_grad():  # off the init (zero position embeddings would hide a wrong layout)
        for p in model.trained_state_dict().values():
            p.add_(torch.randn_like(p) * 0.05)
    dec = GenerativeDecoder.from_texts(GenerativeDecoderConfig(embed_dim=32, width=32, layers=1, heads=2, max_len=8),
                                       TEXTS, model.tokenizer)
    d = tmp_path / f"tiny_{stage}"
    save_checkpoint(d, model.eval(), name=f"tiny{stage}", decoder=dec, queries=QueryTemplates().to_dict(),
                    phrase_banks={"state": TEXTS[:2], "action": TEXTS[2:]}, dtype="fp32")
    return d, load_model(d)


@pytest.mark.parametrize("stage", ["final", "stride16"])
def test_tiny_model_of_each_stage(tmp_path, stage):
    """The export follows the checkpoint's config (stage, grid, window, size):
    frames and predictor graphs agree with PyTorch on simulator frames, short
    windows (a stream's start) included."""
    d, ck = _tiny(tmp_path, stage)
    out = export_onnx(ck, tmp_path / "onnx", graphs=("frames", "state", "pair"), log=lambda _m: None)
    frames, _ = render_episode(3, "test", 96, max_frames=6)
    om = OnnxModel(out, "onnxruntime")
    x = np.stack([preprocess_frame_np(f, 96) for f in frames])
    with torch.no_grad():
        ref = ck.model.encode_frames(torch.from_numpy(x)).numpy()
        feats = om.encode_frames(x)
        assert feats.shape == ref.shape == (6, ck.model.x_encoder.backbone.out_channels,
                                            ck.model.cfg.x_encoder.grid, ck.model.cfg.x_encoder.grid)
        assert _cos(feats, ref).min() >= COS
        for T in (3, 1):  # the model's window, and the shortest (time embeddings sliced)
            w = ref[None, -T:].repeat(2, 0)
            b = ref[None, :T].repeat(2, 0)
            got = om.predict(w, ["what is on the table?", "is the lamp on?"])
            want = ck.model.predict(torch.from_numpy(w), ["what is on the table?", "is the lamp on?"]).numpy()
            assert _cos(got, want).min() >= COS, T
            got = om.predict(w, "what action happened?", b)
            want = ck.model.predict(torch.from_numpy(w), "what action happened?", torch.from_numpy(b)).numpy()
            assert _cos(got, want).min() >= COS, T
    with pytest.raises(BackendError, match="y_encoder.onnx"):  # a graph that was not exported is named
        om.encode_text(["a red cube"])
    with pytest.raises(BackendError, match=r"onnx_manifest.json.*no ONNX export|no ONNX export"):
        load_onnx_checkpoint(d, "onnxruntime")  # cache and <ckpt>/onnx hold nothing for this model


def _cos(a, b):
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_preprocess_and_tokenizer_match_torch(minilm):
    rng = np.random.default_rng(0)
    for h, w in ((224, 224), (480, 640), (120, 100), (160, 160)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        np.testing.assert_allclose(preprocess_frame_np(img, 160), preprocess_frame(img, 160).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="uint8 RGB"):
        preprocess_frame_np(np.zeros((4, 4), np.uint8), 160)
    ck_cfg = json.loads((default_model_path() / "config.json").read_text())
    texts = [t for bank in ck_cfg["phrase_banks"].values() for t in bank] + ["Is the LAMP on?? , ok"]
    from vljepa_ros.models.text import minilm_path

    wp = WordPiece(minilm_path() / "tokenizer.json")
    ids, mask = wp(texts, 64)
    rid, rmask = tokenize(minilm.tokenizer, texts, 64)
    assert np.array_equal(ids, rid.numpy()) and np.array_equal(mask, rmask.numpy())
    for row in rid[:40].tolist() + rid[-1:].tolist():
        assert wp.decode(row) == minilm.tokenizer.decode(row, skip_special_tokens=True).strip()


def test_model_id_is_the_checkpoints():
    blob = b"some weights"
    assert onnx_model._model_id("m", blob) == _model_id("m", blob)


def test_backend_errors(tmp_path, asset_export):
    out, _, _ = asset_export
    with pytest.raises(BackendError, match="unknown backend 'tensorrt'; choose one of torch, onnxruntime, openvino"):
        check_backend("tensorrt")
    with pytest.raises(BackendError, match="unknown backend"):
        load_onnx_checkpoint(None, "cuda", export_dir=out)
    with pytest.raises(BackendError, match="does not run ONNX graphs"):
        OnnxModel(out, "torch")
    with pytest.raises(BackendError, match=str(tmp_path / MANIFEST_FILE)):
        OnnxModel(tmp_path, "onnxruntime")
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / GRAPH_FILES["state"]).unlink()
    with pytest.raises(BackendError, match=str(broken / GRAPH_FILES["state"]) + ": file missing"):
        load_onnx_checkpoint(None, "onnxruntime", export_dir=broken)
    # an export of another model is refused (stale after retraining)
    m = json.loads((out / MANIFEST_FILE).read_text())
    stale = tmp_path / "stale"
    shutil.copytree(out, stale)
    (stale / MANIFEST_FILE).write_text(json.dumps({**m, "model_id": "tabletop@000000000000"}))
    with pytest.raises(BackendError, match="stale export"):
        load_onnx_checkpoint(None, "onnxruntime", export_dir=stale)


def test_onnx_pipeline_does_not_import_torch(asset_export):
    """A node on an ONNX backend runs the perception pipeline and the event
    decoder without torch in the process (that is what saves the memory)."""
    out, _, _ = asset_export
    code = f"""
import sys, numpy as np
from vljepa_ros.runtime.onnx_model import load_onnx_checkpoint
from vljepa_ros.perception import PerceptionPipeline
from vljepa_ros.semantic_events import EventStream
ck = load_onnx_checkpoint(None, "onnxruntime", export_dir={str(out)!r})
pipe = PerceptionPipeline(ck)
pipe.warm_up()
dec = EventStream(ck, "generative")
dec.warm_up()
events = []
for i in range(20):  # the initial event comes once the stream has settled
    r = pipe.process(np.full((224, 224, 3), 90, np.uint8), 0.1 * i)
    events += dec.update(r.stamp, r.embedding)
assert events and events[0].kind == "initial" and events[0].text, events
assert pipe._reading is not None and pipe._reading.caption  # read on the ONNX backend too
assert "torch" not in sys.modules, sorted(m for m in sys.modules if m.startswith("torch"))
print("ok", events[0].text)
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO_ROOT,
                          env=env)
    assert proc.returncode == 0 and "ok" in proc.stdout, proc.stderr[-3000:]


def test_nodes_backend_parameter(asset_export):
    """backend is a read-only parameter of both nodes; an ONNX backend finds the
    export in the cache and runs the ONNX world model / text ops."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.parameter import Parameter

    from vljepa_ros.ros.decoder_node import DecoderNode
    from vljepa_ros.ros.perception_node import PerceptionNode
    from vljepa_ros.runtime.onnx_model import OnnxText, OnnxWorldModel

    rclpy.init()
    try:
        with pytest.raises(ValueError, match="backend"):
            PerceptionNode(parameter_overrides=[Parameter("backend", value="tensorrt")])
        node = PerceptionNode(parameter_overrides=[Parameter("backend", value="onnxruntime")])
        assert isinstance(node.pipeline.world, OnnxWorldModel)
        node.destroy_node()
        node = DecoderNode(parameter_overrides=[Parameter("backend", value="openvino")])
        assert isinstance(node.stream.text, OnnxText)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_onnx_state_reading_matches_torch(asset_export):
    """WorldModel.read_state on both backends: the same state from the same frames."""
    from vljepa_ros.runtime.onnx_model import OnnxWorldModel
    from vljepa_ros.world_model import WorldModel

    out, _, _ = asset_export
    onnx = load_onnx_checkpoint(None, "onnxruntime", export_dir=str(out))
    torch_ck = load_model()
    worlds = [WorldModel(torch_ck.model, ["x"], ["y"]), OnnxWorldModel(onnx.model, ["x"], ["y"])]
    frames, stamps = render_episode(7, "test", 224, max_frames=3)
    for world in worlds:
        for frame, stamp in zip(frames, stamps):
            world.push_frame(frame, stamp)
    a, b = (w.read_state() for w in worlds)
    assert a.caption == b.caption and a.confidence == pytest.approx(b.confidence, rel=0.05)
    assert _cos(np.asarray(a.embedding)[None], np.asarray(b.embedding)[None])[0] > 0.9999
