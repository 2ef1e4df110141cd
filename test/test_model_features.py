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


def test_world_model_check_adds_outcome_consistency_to_action_scores(minilm):
    from vljepa_ros.world_model import outcome_consistency

    torch.manual_seed(1)
    cfg = VLJEPAConfig(x_encoder=XEncoderConfig(stage="stride16", grid=2, window_frames=2),
                       predictor=PredictorConfig(embed_dim=32), y_encoder=YEncoderConfig(embed_dim=32))
    model = VLJEPA(cfg).eval()
    actions = ["push the red cube left", "turn the lamp off", "remove the blue ball"]
    world = WorldModel(model, ["a"], actions)
    before, after = torch.randn(2, 112, 2, 2), torch.randn(2, 112, 2, 2)
    plain = world.action_between(before, after)
    checked = world.action_between(before, after, outcome_weight=2.0)
    check = outcome_consistency(model, before[None], world.embed(world.queries.state, after), actions,
                                world.queries.outcome)
    base = dict(zip(plain.labels, plain.scores))
    for label, score in zip(checked.labels, checked.scores):
        assert score == pytest.approx(base[label] + 2.0 * check[actions.index(label)].item(), abs=1e-5)
    assert checked.scores == sorted(checked.scores, reverse=True)
    with torch.no_grad():  # the check: the predicted outcome of each action vs the after state, one by one
        for k, a in enumerate(actions):
            out = model.predict(before[None], world.queries.outcome.format(action=a))[0]
            assert check[k].item() == pytest.approx((out @ world.embed(world.queries.state, after)).item(), abs=1e-5)
