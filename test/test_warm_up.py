"""Warm-up (ROS-free): the nodes run it before their first frame so that lazy
set-up (phrase-bank encoding, first predictor pass) does not stall a live
stream. It must prepare everything and change nothing a caller can see."""
import numpy as np
import pytest

from vljepa_ros.checkpoint import load_model
from vljepa_ros.perception import PerceptionPipeline
from vljepa_ros.semantic_events import EventStream


@pytest.fixture(scope="module")
def checkpoint():
    return load_model()


def frames(n=6, size=96, seed=0):
    rng = np.random.default_rng(seed)
    return [(i / 15.0, rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for i in range(n)]


def test_pipeline_warm_up_encodes_the_banks_and_leaves_no_trace(checkpoint):
    cold, warm = PerceptionPipeline(checkpoint), PerceptionPipeline(checkpoint)
    assert cold.world._state_bank._cache is None and cold.world._action_bank._cache is None
    assert warm.warm_up() > 0.0
    assert warm.world._state_bank._cache is not None and warm.world._action_bank._cache is not None
    assert not warm.has_frames(), "the blank warm-up frame must not stay in the window"
    assert warm._changes.seen == 0, "nor in the change detector"
    for stamp, rgb in frames():
        a, b = cold.process(rgb, stamp), warm.process(rgb, stamp)
        assert a.window_frames == b.window_frames and a.window_start == b.window_start
        np.testing.assert_allclose(a.embedding, b.embedding, atol=1e-5)
        assert a.state.labels == b.state.labels


def test_pipeline_warm_up_then_a_stream_starting_at_zero(checkpoint):
    # the warm-up frame is stamped 0.0; a camera whose first stamp is 0.0 must not be refused as stale
    pipeline = PerceptionPipeline(checkpoint)
    pipeline.warm_up()
    assert pipeline.process(frames(1)[0][1], 0.0) is not None


@pytest.mark.parametrize("mode", ["generative", "retrieval"])
def test_decoder_warm_up_is_not_counted_and_changes_no_event(checkpoint, mode):
    texts = checkpoint.phrase_banks["state"][:3]
    targets = checkpoint.model.encode_text(texts).detach().numpy()
    stream = [(i / 15.0, targets[0 if i < 20 else 1]) for i in range(40)]
    events = {}
    for warm in (False, True):
        decoder = EventStream(checkpoint, mode)
        if warm:
            assert decoder.warm_up() > 0.0
            assert decoder.counters()["decodes"] == 0 and decoder.counters()["seen"] == 0
            assert decoder.current_text == ""
        out = [e for stamp, emb in stream for e in decoder.update(stamp, emb)]
        events[warm] = [(e.kind, e.text, e.state_start_s) for e in out]
        assert decoder.counters()["decodes"] == len(out)
    assert events[True] == events[False] and [k for k, _, _ in events[True]] == ["initial", "change"]
