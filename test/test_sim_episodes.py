import os
import tempfile

os.environ.setdefault("MESA_SHADER_CACHE_DIR", tempfile.mkdtemp(prefix="mesa_"))

import numpy as np
import pytest

from conftest import REPO_ROOT
from vljepa_ros.sim import captions as C
from vljepa_ros.sim.episodes import EpisodeScript, Event
from vljepa_ros.sim.world import SceneParams, TabletopWorld


@pytest.fixture(scope="module")
def world():
    w = TabletopWorld()
    yield w
    w.close()


def test_pacing_statistics():
    intervals, quick, long_ = [], 0, 0
    for seed in range(30):
        s = EpisodeScript.generate(seed, "train")
        ts = np.array(s.change_times())
        assert len(ts) >= 2
        d = np.diff(ts)
        intervals.extend(d)
        quick += int((d < 1.0).sum())
        long_ += int((d > 10.0).sum())
        # events never overlap and stay inside the episode
        for a, b in zip(s.events[:-1], s.events[1:]):
            assert a.frame_end < b.frame_start
        assert s.events[-1].frame_end < s.n_frames
        for e in s.events:
            if e.kind == "push":
                assert 0.5 <= (e.frame_end - e.frame_start + 1) / s.fps <= 1.1
            else:
                assert e.frame_start == e.frame_end
    assert 2.0 <= np.mean(intervals) <= 10.0
    assert quick >= 1 and long_ >= 1


def test_script_deterministic_and_legal():
    a = EpisodeScript.generate(7, "train").to_dict()
    b = EpisodeScript.generate(7, "train").to_dict()
    assert a == b
    assert a != EpisodeScript.generate(8, "train").to_dict()
    for seed in range(20):
        s = EpisodeScript.generate(seed, "val")
        for t in s.truths():
            cells = [tuple(o["cell"]) for o in t.objects]
            assert len(cells) == len(set(cells)) and len(cells) <= 3


def test_same_seed_same_frames(world):
    s = EpisodeScript.generate(3, "train")
    s.n_frames = 5
    f1 = [rgb for _, _, rgb, _ in s.frames(world, 64, 64)]
    s2 = EpisodeScript.generate(3, "train")
    s2.n_frames = 5
    f2 = [rgb for _, _, rgb, _ in s2.frames(world, 64, 64)]
    assert all(np.array_equal(x, y) for x, y in zip(f1, f2)) and len(f1) == 5


def _red(img):
    r, g, b = (img[..., i].astype(int) for i in range(3))
    return (r > 100) & (g < 0.45 * r) & (b < 0.45 * r)


def test_push_left_moves_left_in_image(world):
    fps = 15.0
    ev = Event("e000", "push", 3, 14, "red", "cube", "left", (2, 0), (1, 0), 12)
    s = EpisodeScript(0, "train", fps, 18, SceneParams(), [("red", "cube", (2, 0))], True, [ev])
    frames = {i: (rgb, tr) for i, _, rgb, tr in s.frames(world, 96, 96)}
    x0 = np.nonzero(_red(frames[0][0]))[1].mean()
    x1 = np.nonzero(_red(frames[17][0]))[1].mean()
    assert x1 < x0 - 5, (x0, x1)
    assert frames[8][1].arm_moving and frames[8][1].transition_id == "e000"
    assert not frames[17][1].arm_moving and frames[17][1].objects[0]["cell"] == [1, 0]
    assert frames[0][1].objects[0]["cell"] == [2, 0]
    tr = s.transitions()[0]
    assert tr["before_frames"] == [0, 2] and tr["after_frames"] == [15, 17]
    # the arm is visible moving: mid-push frame differs from the first frame a lot
    assert np.abs(frames[8][0].astype(int) - frames[0][0].astype(int)).mean() > 2


def test_caption_paraphrases_and_canonical():
    st = {"objects": [{"colour": "blue", "shape": "ball", "cell": [2, 1]},
                      {"colour": "red", "shape": "cube", "cell": [0, 0]}], "lamp_on": True}
    st2 = {"objects": st["objects"][::-1], "lamp_on": True}
    c = C.state_caption(st)
    assert c == C.state_caption(st2)
    assert c == "a red cube on the front left and a blue ball on the back right; the lamp is on"
    p = C.state_paraphrases(st, 4, seed=1)
    assert len(set(p)) >= 3 and c not in p
    assert C.state_paraphrases(st, 4, seed=1) == p
    for on in (True, False):
        assert len(set(C.LAMP_TEMPLATES[on])) >= 3
    assert len(set(C.OBJECT_TEMPLATES)) >= 3 and len(set(C.EMPTY_TEMPLATES)) >= 3
    for _kind, tmpl in C.ACTION_TEMPLATES.items():
        assert len(set(tmpl)) >= 3
    a = {"kind": "push", "colour": "red", "shape": "cube", "direction": "left"}
    assert C.action_text(a) == "push the red cube to the left"
    assert C.action_text({"kind": "lamp_off"}) == "turn the lamp off"
    assert C.action_text({"kind": "place", "colour": "green", "shape": "ball"}) == "place a green ball"
    assert len(set(C.action_paraphrases(a, 3))) == 3
    off = C.state_caption({"objects": [], "lamp_on": False})
    assert off == "the table is empty; the lamp is off"


def test_distractors():
    before = {"objects": [{"colour": "red", "shape": "cube", "cell": [1, 0]},
                          {"colour": "blue", "shape": "ball", "cell": [2, 1]}], "lamp_on": True}
    a = {"kind": "push", "colour": "red", "shape": "cube", "direction": "left"}
    after = C.apply_action(before, a)
    assert after["objects"][0]["cell"] == [0, 0]
    d = C.action_distractors(a, before, seed=0)
    assert len(d) == 3 and len(set(d)) == 3 and C.action_text(a) not in d
    assert "red cube" in d[0]
    assert "blue ball" in d[1] and "to the left" in d[1]
    o = C.outcome_distractors(before, a, after, seed=0)
    assert len(o) == 3 and len(set(o)) == 3 and C.state_caption(after) not in o
    for seed in range(20):
        s = EpisodeScript.generate(seed, "test")
        for tr in s.transitions():
            if tr["before_state"] is None:
                continue
            dd = C.action_distractors(tr["action"], tr["before_state"], seed)
            assert len(set(dd)) == 3 and C.action_text(tr["action"]) not in dd
            oo = C.outcome_distractors(tr["before_state"], tr["action"], tr["after_state"], seed)
            assert len(set(oo)) == 3 and C.state_caption(tr["after_state"]) not in oo
            assert C.apply_action(tr["before_state"], tr["action"]) is not None


def test_outer_training_camera_band_never_reaches_the_test_band():
    from vljepa_ros.sim.episodes import EpisodeConfig

    cfg = EpisodeConfig(cam_azimuth_train_outer_abs=(21.0, 28.0), cam_azimuth_train_outer_p=0.5)
    train = [abs(EpisodeScript.generate(s, "train", cfg).params.cam_azimuth - 90.0) for s in range(60)]
    test = [abs(EpisodeScript.generate(s, "test", cfg).params.cam_azimuth - 90.0) for s in range(30)]
    assert all(a <= 8.0 or 21.0 <= a <= 28.0 for a in train)
    assert any(a >= 21.0 for a in train) and any(a <= 8.0 for a in train)
    assert all(11.0 <= a <= 18.0 for a in test)
    # the test split is drawn exactly as without the outer band
    assert [EpisodeScript.generate(s, "test", cfg).to_dict() for s in range(3)] == \
        [EpisodeScript.generate(s, "test").to_dict() for s in range(3)]
    with pytest.raises(ValueError, match="overlap"):
        EpisodeConfig(cam_azimuth_train_outer_abs=(15.0, 25.0), cam_azimuth_train_outer_p=0.5)


def test_config_values_reach_the_generator(tmp_path):
    """The YAML is authoritative (its fps used to be overwritten by --fps's
    default), a delta config inherits its base, and --fps overrides only when given."""
    import json

    from vljepa_ros.data.generate import load_config, main as generate

    pairs = load_config(str(REPO_ROOT / "config" / "sim_pairs.yaml"))
    world = load_config(str(REPO_ROOT / "config" / "sim_world.yaml"))
    assert pairs.fps == 3.0 and pairs.quick_p == 0.0 and world.fps == 15.0
    assert pairs.cam_elevation == world.cam_elevation  # inherited from the base
    for extra, fps, frames in (([], 3.0, 9), (["--fps", "2"], 2.0, 6)):
        out = tmp_path / f"d{fps}"
        assert generate(["--out", str(out), "--episodes-train", "1", "--episodes-val", "0", "--episodes-test", "0",
                         "--image-size", "32", "--config", str(REPO_ROOT / "config" / "sim_pairs.yaml"), *extra]) == 0
        meta = json.loads((out / "meta.json").read_text())
        assert meta["fps"] == fps and meta["config"]["fps"] == fps
        assert meta["counts"]["train"]["frames"] == frames
