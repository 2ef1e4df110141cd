"""The X-encoder's feature stage, the one first-window rule, and the attribute task."""
import random

import pytest
import torch

from vljepa_ros.data.tasks import attribute_questions
from vljepa_ros.models import VLJEPA, PredictorConfig, VLJEPAConfig, XEncoderConfig, YEncoderConfig, build_backbone
from vljepa_ros.models.x_encoder import pad_window, window_at
from vljepa_ros.world_model import WorldModel

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_stride16_stage_is_the_full_trunk_read_early():
    torch.manual_seed(0)
    full = build_backbone("efficientnet_lite0", 160, "final")
    early = build_backbone("efficientnet_lite0", 160, "stride16")
    assert early.out_channels == 112 and full.out_channels == 1280
    seen = {}
    hook = full.net._blocks[len(early.net._blocks) - 1].register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
    images = torch.rand(2, 3, 160, 160) * 2 - 1
    final = full(images)
    hook.remove()
    mid = early(images)
    assert final.shape == (2, 1280, 5, 5) and mid.shape == (2, 112, 10, 10)
    assert torch.equal(mid, seen["x"])  # the same blocks, the same weights: not an approximation
    # the next block downsamples: 112 is the last stride-16 width
    assert full.net._blocks[len(early.net._blocks)]._block_args.output_filters != 112
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite0 stage"):
        build_backbone("efficientnet_lite0", 160, "stride8")


def test_pad_window_repeats_the_oldest_frame():
    frames = torch.arange(2.0).view(2, 1, 1, 1)
    assert pad_window(frames, 3).flatten().tolist() == [0.0, 0.0, 1.0]
    assert pad_window(frames, 2) is frames
    with pytest.raises(ValueError, match="1..3 frames"):
        pad_window(torch.zeros(4, 1, 1, 1), 3)


def test_first_window_is_the_same_in_training_and_serving(minilm):
    """SplitTasks.window (training, evaluation, bench) and WorldModel.window
    (perception_node) build the same window from the same frames, at the
    stream's start too (they used to differ there: a short window in serving)."""
    torch.manual_seed(0)
    T, G, C = 3, 2, 112
    cfg = VLJEPAConfig(x_encoder=XEncoderConfig(stage="stride16", grid=G, window_frames=T),
                       predictor=PredictorConfig(embed_dim=32), y_encoder=YEncoderConfig(embed_dim=32))
    model = VLJEPA(cfg).eval()
    world = WorldModel(model, ["a"], ["b"])
    stream = torch.randn(6, C, G, G)
    for end in range(stream.shape[0]):
        world.cache.push(float(end), stream[end])
        served = world.window().features
        trained = window_at(stream, end, T)
        assert torch.equal(served, trained), f"frame {end}"
        with torch.no_grad():
            assert torch.allclose(world.embed("what is on the table?"),
                                  model.predict(trained[None], "what is on the table?")[0], atol=1e-6)


STATE = {"objects": [{"colour": "red", "shape": "cube", "cell": [0, 0]},
                     {"colour": "blue", "shape": "ball", "cell": [2, 1]}], "lamp_on": True}


def test_attribute_questions_answer_from_the_state():
    rng = random.Random(0)
    seen = {}
    for _ in range(400):
        q, a = attribute_questions(STATE, rng)
        seen.setdefault(q, set()).add(a)
    assert seen["what is on the front left?"] == {"a red cube"}
    assert seen["what is on the back right?"] == {"a blue ball"}
    assert seen["what is on the front center?"] == {"nothing"}
    assert seen["where is the red cube?"] == {"on the front left"}
    assert seen["where is the blue ball?"] == {"on the back right"}
    assert seen["which objects are on the table?"] == {"a blue ball and a red cube"}
    assert seen["how many objects are on the table?"] == {"two"}
    absent = [
        q for q in seen if q.startswith("where is") and q not in ("where is the red cube?", "where is the blue ball?")
    ]
    assert absent and all(seen[q] == {"it is not on the table"} for q in absent)
    empty = {"objects": [], "lamp_on": False}
    assert {attribute_questions(empty, random.Random(k))[1] for k in range(50)} <= {"nothing", "none",
                                                                                  "it is not on the table"}
