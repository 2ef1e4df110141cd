"""The fact views a reading's colour and shape questions look at
(vljepa_ros/fact_views.py), and how training and the world model use them."""
import random

import numpy as np
import pytest
import torch

from vljepa_ros import fact_views


def _frame(seed=0, size=32):
    return np.random.default_rng(seed).uniform(-1, 1, (3, size, size)).astype(np.float32)


def test_colour_view_keeps_colour_and_removes_outlines():
    flat = np.full((3, 32, 32), 0.25, np.float32)
    flat[0] = -0.5
    assert np.allclose(fact_views.colour_view(flat), flat, atol=1e-6)  # a plain colour stays itself, to the border
    square = np.full((3, 40, 40), -1.0, np.float32)
    square[:, 16:24, 16:24] = 1.0  # an 8-px square on black
    blurred = fact_views.colour_view(square)
    assert blurred.shape == square.shape and blurred.dtype == np.float32
    assert abs(blurred.mean() - square.mean()) < 0.02  # the colour mass stays where it was
    edge = np.abs(np.diff(square[0], axis=1)).max()
    assert np.abs(np.diff(blurred[0], axis=1)).max() < 0.25 * edge  # no sharp outline left


def test_shape_view_is_grey_and_its_training_weights_hide_brightness():
    x = _frame(1)
    grey = fact_views.shape_view(x)
    assert np.allclose(grey[0], grey[1]) and np.allclose(grey[1], grey[2])
    assert np.allclose(grey[0], x.mean(0), atol=1e-6)  # the reading's weighting: 1/3 each
    w = [fact_views.shape_view_weights(f"scenes/train_{k:05d}/0") for k in range(200)]
    assert all(abs(v.sum() - 1) < 1e-5 and (v >= 0).all() for v in w)
    assert np.array_equal(w[0], fact_views.shape_view_weights("scenes/train_00000/0"))  # fixed per frame
    yellow = np.array([1.0, 1.0, -1.0], np.float32)  # yellow is bright under luma, dark under a blue-heavy weighting
    levels = [float(v @ yellow) for v in w]
    assert min(levels) < -0.3 and max(levels) > 0.7


def test_view_names_are_checked():
    assert np.allclose(fact_views.view(_frame(), "shape"), fact_views.shape_view(_frame()))
    assert not np.allclose(fact_views.view(_frame(), "shape", key="a/b/0"), fact_views.shape_view(_frame()))
    with pytest.raises(ValueError, match="unknown fact view"):
        fact_views.view(_frame(), "texture")


def test_cell_questions_of_a_viewed_split_look_at_their_fact_view():
    from types import SimpleNamespace

    from vljepa_ros.data.tasks import SplitTasks

    state = {"objects": [{"colour": "red", "shape": "cube", "cell": [0, 0]}], "lamp_on": True, "arm": None}
    rec = {"state": state, "caption": "a red cube on the front left; the lamp is on", "paraphrases": []}
    frames = [SimpleNamespace(record=rec)]
    ds = SimpleNamespace(episode_frames=lambda ep: frames, episodes=lambda: ["e0"], transitions=lambda: [], meta={})
    feats = {"e0": torch.zeros(1, 4, 2, 2)}
    views = {"colour": {"e0": torch.ones(1, 4, 2, 2)}, "shape": {"e0": torch.full((1, 4, 2, 2), 2.0)}}
    tasks = SplitTasks(ds, feats, window_frames=3, views=views)
    b = tasks.sample(40, {"state": 0.5, "cell": 0.5}, random.Random(0))
    cell = [k for k, q in enumerate(b.queries) if q.startswith("what colour") or q.startswith("what shape")]
    assert len(cell) == 20
    for k in cell:  # each fact on its own view, the frame repeated over the window
        want = 1.0 if b.queries[k].startswith("what colour") else 2.0
        assert b.windows[k].shape == (3, 4, 2, 2) and torch.all(b.windows[k] == want)
    assert all(torch.all(b.windows[k] == 0) for k in range(40) if k not in cell)
    assert set(tasks.view_windows([("e0", 0)])) == {"colour", "shape"}
    assert SplitTasks(ds, feats, window_frames=3).view_windows([("e0", 0)]) is None
