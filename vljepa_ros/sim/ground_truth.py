"""The ground-truth record of one simulated camera frame: what sim_camera_node
publishes on ``camera/ground_truth`` and the bag recorder writes next to each
image (one schema, live or replayed). ROS-free.

One JSON object per image, with the image's stamp::

    {"seed", "split", "episode", "frame", "n_frames", "t",
     "stamp": {"sec", "nanosec"}, "frame_id", "caption", "state",
     "arm_moving", "transition_id", "last_transition_id",
     "event": null | {"id", "kind", "action", "action_struct", "frame_start", "frame_end"},
     "camera_pose": {"frame_id": <world frame>, "position": [x, y, z],
                     "orientation": [x, y, z, w]}}

``event`` is set only on the frame where an event starts. ``caption`` is
:func:`~vljepa_ros.sim.captions.state_caption` of the frame's state (with the
arm phrase while the arm moves).
"""

from __future__ import annotations

from .camera import camera_pose
from .captions import action_text, state_caption
from .episodes import EpisodeScript, FrameTruth


def truth_record(script: EpisodeScript, truth: FrameTruth, stamp_ns: int, frame_id: str,
                 world_frame_id: str = "world") -> dict:
    """The record of frame ``truth.frame`` of ``script`` stamped ``stamp_ns``."""
    i = int(truth.frame)
    event = next(({"id": e.id, "kind": e.kind, "action": action_text(e.action()), "action_struct": e.action(),
                   "frame_start": e.frame_start, "frame_end": e.frame_end}
                  for e in script.events if e.frame_start == i), None)
    p = script.params
    pos, quat = camera_pose(p.cam_azimuth, p.cam_elevation, p.cam_distance, p.cam_lookat)
    state = truth.state()
    return {
        "seed": script.seed,
        "split": script.split,
        "episode": f"{script.split}_{script.seed:05d}",
        "frame": i,
        "n_frames": int(script.n_frames),
        "t": float(truth.t),
        "stamp": {"sec": int(stamp_ns // 1_000_000_000), "nanosec": int(stamp_ns % 1_000_000_000)},
        "frame_id": frame_id,
        "caption": state_caption(state),
        "state": state,
        "arm_moving": bool(truth.arm_moving),
        "transition_id": truth.transition_id,
        "last_transition_id": truth.last_transition_id,
        "event": event,
        "camera_pose": {"frame_id": world_frame_id, "position": [float(v) for v in pos],
                        "orientation": [float(v) for v in quat]},
    }
