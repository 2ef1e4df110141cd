"""Moments: stable segments of the embedding stream, and the camera pose at a stamp.

A moment is what the memory stores: the stretch between two changes of the
scene's meaning, cut by the same :class:`~vljepa_ros.change_detection.ChangeDetector`
(and parameters) that decides decoder_node's events, so a moment starts at the
stamp of the event that describes it and storage grows with what happens, not
with time. ROS-free: stamps are integer nanoseconds of camera time, poses plain
tuples.

    embeddings --ChangeDetector--> trigger (initial / change) --> close the open moment, open a new one

The mean embedding of a moment averages the frames while the detector saw the
state as stable (the settled frames the trigger decoded, then every stable
frame after it); frames of a change in progress belong to no moment's mean
(the arm is in view, the scene is moving), and a change that is cancelled or
settles back on the old state only extends the old moment.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np

from ..change_detection import ChangeDetector, ChangeDetectorConfig

NS = 1_000_000_000


@dataclass(frozen=True)
class Pose:
    """Camera pose in a fixed frame: position (m) and orientation quaternion (x, y, z, w), ROS order."""

    frame_id: str
    position: tuple[float, float, float]
    orientation: tuple[float, float, float, float]


@dataclass
class Moment:
    start_ns: int                 # first frame of the state (= the SemanticEvent's header.stamp)
    end_ns: int                   # last frame seen in this state (grows while the moment is open)
    frame_id: str                 # camera frame of the images
    embedding: np.ndarray         # (D,) float32, unit: mean predicted embedding of the stable frames
    model_id: str
    n_frames: int = 0             # frames averaged into the embedding
    pose: Pose | None = None      # camera pose at start_ns, None when no pose source had one
    text: str = ""                # decoded event text when decoder_node described this moment
    action: str = ""              # the action that led into this moment, when estimated
    action_confidence: float = 0.0
    score: float = field(default=0.0, compare=False)  # query result only: cosine to the query

    @property
    def start_s(self) -> float:
        return self.start_ns / NS

    @property
    def end_s(self) -> float:
        return self.end_ns / NS

    @property
    def id(self) -> int:
        # One moment per start stamp and model: the store's primary key.
        return self.start_ns


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return (v / n if n > 0 else v).astype(np.float32)


class MomentSegmenter:
    """Online: embeddings in, closed moments out.

    ``update`` returns the moments that closed on this frame (at most one); the
    open moment is :attr:`current` (None before the first trigger). ``close``
    ends the open moment (shutdown). Memory is constant: running sums only.
    """

    def __init__(self, model_id: str, config: ChangeDetectorConfig | None = None):
        self.model_id = model_id
        self.detector = ChangeDetector(config)
        self.current: Moment | None = None
        self._sum: np.ndarray | None = None
        self._last_ns: int | None = None

    @property
    def config(self) -> ChangeDetectorConfig:
        return self.detector.config

    def reset(self) -> list[Moment]:
        """Forget the stream (time jumped back, the model changed); returns the moment it closed."""
        closed = self.close()
        self.detector.reset()
        self._last_ns = None
        return closed

    def update(self, stamp_ns: int, embedding: np.ndarray, frame_id: str = "") -> list[Moment]:
        stamp_ns = int(stamp_ns)
        trigger = self.detector.update(stamp_ns / NS, embedding)
        if trigger is None:
            if self.current is not None and (self._last_ns is None or stamp_ns > self._last_ns):
                self._last_ns = stamp_ns
                if self.detector.phase == "stable":
                    # a stable frame of the open moment (not a frame of a change in progress)
                    e = np.asarray(embedding, dtype=np.float64).reshape(-1)
                    n = float(np.linalg.norm(e))
                    if n > 0 and np.all(np.isfinite(e)) and e.shape == self._sum.shape:
                        self._sum += e / n
                        self.current.n_frames += 1
                    self.current.end_ns = stamp_ns
                    self.current.embedding = _unit(self._sum)
            return []
        if trigger.kind == "heartbeat":
            return []
        closed: list[Moment] = []
        start_ns = int(round(trigger.state_start_s * NS))
        if self.current is not None:
            # the old state lasted until just before the change began
            self.current.end_ns = max(self.current.start_ns, min(self.current.end_ns, start_ns - 1))
            closed.append(self.current)
        seed = np.asarray(trigger.decode_embedding, dtype=np.float64)
        self._sum = seed.copy()
        self._last_ns = stamp_ns
        self.current = Moment(start_ns=start_ns, end_ns=stamp_ns, frame_id=frame_id,
                              embedding=_unit(seed), model_id=self.model_id, n_frames=1)
        return closed

    def close(self) -> list[Moment]:
        moment, self.current, self._sum = self.current, None, None
        return [moment] if moment is not None else []


# ---------------------------------------------------------------------------
# Poses by stamp (the pose-topic path; TF does the same inside tf2)
# ---------------------------------------------------------------------------


def _wxyz(q_xyzw) -> np.ndarray:
    x, y, z, w = q_xyzw
    return np.array([w, x, y, z], dtype=np.float64)


def _xyzw(q_wxyz) -> tuple[float, float, float, float]:
    w, x, y, z = (float(v) for v in q_wxyz)
    return (x, y, z, w)


def slerp_xyzw(q0, q1, u: float) -> tuple[float, float, float, float]:
    """Spherical interpolation of two ROS (x, y, z, w) quaternions (transforms3d maths)."""
    from transforms3d import quaternions as tq

    a, b = _wxyz(q0), _wxyz(q1)
    a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
    if float(np.dot(a, b)) < 0.0:
        b = -b  # the short way round
    q = tq.qmult(a, tq.qpow(tq.qmult(tq.qinverse(a), b), u))
    return _xyzw(q / np.linalg.norm(q))


def compose(pose: Pose, offset_xyz, offset_xyzw) -> Pose:
    """``pose`` (e.g. the robot base from odometry) composed with a fixed
    camera offset in that body's frame: the camera's pose in pose.frame_id."""
    from transforms3d import quaternions as tq

    q = _wxyz(pose.orientation)
    p = np.asarray(pose.position, float) + tq.rotate_vector(np.asarray(offset_xyz, float), q)
    return Pose(pose.frame_id, tuple(float(v) for v in p), _xyzw(tq.qmult(q, _wxyz(offset_xyzw))))


class PoseBuffer:
    """Recent stamped poses from a topic; the pose at a stamp, interpolated
    between its neighbours (linear position, slerp orientation), or None when
    the stamp is outside the buffer by more than ``tolerance_ns`` (a pose
    from the wrong time is worse than none: the issue's "recorded with the
    wrong pose")."""

    def __init__(self, capacity: int = 2048, tolerance_ns: int = NS // 10):
        self._stamps: deque[int] = deque(maxlen=capacity)
        self._poses: deque[Pose] = deque(maxlen=capacity)
        self.tolerance_ns = int(tolerance_ns)
        self.rejected = 0

    def __len__(self) -> int:
        return len(self._stamps)

    def add(self, stamp_ns: int, pose: Pose) -> bool:
        values = (*pose.position, *pose.orientation)
        if not all(math.isfinite(v) for v in values) or not any(pose.orientation):
            self.rejected += 1
            return False
        stamp_ns = int(stamp_ns)
        if self._stamps and stamp_ns <= self._stamps[-1]:
            if stamp_ns < self._stamps[-1] - 10 * NS:  # time went back (bag loop): a new stream
                self._stamps.clear()
                self._poses.clear()
            else:
                self.rejected += 1  # out of order: keep the buffer sorted
                return False
        self._stamps.append(stamp_ns)
        self._poses.append(pose)
        return True

    def pose_at(self, stamp_ns: int) -> Pose | None:
        if not self._stamps:
            return None
        stamps = self._stamps
        i = bisect.bisect_left(stamps, stamp_ns)
        if i < len(stamps) and stamps[i] == stamp_ns:
            return self._poses[i]
        if i == 0:
            return self._poses[0] if stamps[0] - stamp_ns <= self.tolerance_ns else None
        if i == len(stamps):
            return self._poses[-1] if stamp_ns - stamps[-1] <= self.tolerance_ns else None
        t0, t1 = stamps[i - 1], stamps[i]
        p0, p1 = self._poses[i - 1], self._poses[i]
        if t1 - t0 > 10 * self.tolerance_ns:
            # a gap in the pose stream: only a close neighbour counts
            near, dt = (p0, stamp_ns - t0) if stamp_ns - t0 <= t1 - stamp_ns else (p1, t1 - stamp_ns)
            return near if dt <= self.tolerance_ns else None
        u = (stamp_ns - t0) / (t1 - t0)
        pos = tuple(float(a + u * (b - a)) for a, b in zip(p0.position, p1.position))
        return replace(p0, position=pos, orientation=slerp_xyzw(p0.orientation, p1.orientation, u))
