"""The per-frame ground-truth record (sim/ground_truth.py): one schema for the
sim camera's topic and the bag recorder, built without rendering."""

from vljepa_ros.sim.camera import SIM_EPOCH_NS, camera_pose, sim_stamp_ns
from vljepa_ros.sim.captions import action_text, scene_caption, state_caption
from vljepa_ros.sim.episodes import EpisodeScript
from vljepa_ros.sim.ground_truth import truth_record


def test_truth_record_marks_event_starts_and_splits_the_stamp():
    script = EpisodeScript.generate(0, "test")
    starts = {e.frame_start: e for e in script.events}
    assert starts, "seed 0 / test has events"
    p = script.params
    pos, quat = camera_pose(p.cam_azimuth, p.cam_elevation, p.cam_distance, p.cam_lookat)
    for truth in script.truths():
        ns = sim_stamp_ns(truth.t)
        r = truth_record(script, truth, ns, "cam", "map")
        assert r["stamp"]["sec"] * 1_000_000_000 + r["stamp"]["nanosec"] == ns
        assert r["episode"] == "test_00000" and r["frame"] == truth.frame and r["frame_id"] == "cam"
        assert r["caption"] == state_caption(truth.state())
        e = starts.get(truth.frame)
        assert (r["event"] or {}).get("action") == (action_text(e.action()) if e else None)
        assert r["camera_pose"] == {"frame_id": "map", "position": [float(v) for v in pos],
                                    "orientation": [float(v) for v in quat]}
    assert sim_stamp_ns(0.0) == SIM_EPOCH_NS > 0  # ROS time 0 means "no clock yet"


def test_scene_caption_drops_only_the_arm_phrase():
    moving = next(t for t in EpisodeScript.generate(0, "test").truths() if t.arm_moving and t.arm)
    assert state_caption(moving.state()).startswith(scene_caption(moving.state()) + "; ")
    assert scene_caption(moving.state()) == state_caption(dict(moving.state(), arm=None))
