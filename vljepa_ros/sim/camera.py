"""The simulator's camera as a ROS camera sees it (ROS-free, one definition
for sim_camera_node, the bag recorder and the memory evaluation): its pose,
its pinhole intrinsics and the simulated clock its stamps come from."""

from __future__ import annotations

import math

import numpy as np

# Simulated time = SIM_EPOCH_NS + nanoseconds of episode time. Not zero: ROS
# time 0 means "no clock received yet" for use_sim_time nodes.
SIM_EPOCH_NS = 1_000_000_000 * 1_000_000_000  # 1e9 s


def sim_stamp_ns(t_s: float) -> int:
    """Stamp (integer ns; a double of ~1e18 ns would round to ~128 ns) of simulated time ``t_s``."""
    return SIM_EPOCH_NS + int(round(t_s * 1e9))


def pinhole_intrinsics(fovy_deg: float, width: int, height: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of MuJoCo's camera: ``fovy`` is the vertical field of
    view, pixels are square. cx, cy use the ROS/OpenCV convention that pixel
    (0, 0) is the *centre* of the first pixel, so the optical axis hits
    ((w - 1) / 2, (h - 1) / 2)."""
    fy = (height / 2.0) / math.tan(math.radians(fovy_deg) / 2.0)
    return fy, fy, (width - 1) / 2.0, (height - 1) / 2.0


def camera_pose(azimuth_deg: float, elevation_deg: float, distance: float,
                lookat) -> tuple[np.ndarray, np.ndarray]:
    """Pose of the optical frame (x right, y down, z forward) of MuJoCo's free
    camera in the world frame: (position xyz, quaternion xyzw).

    MuJoCo: forward = (cos el cos az, cos el sin az, sin el); the (mono)
    camera sits at lookat - distance * forward."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    fwd = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    pos = np.asarray(lookat, float) - distance * fwd
    right = np.cross(fwd, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    rot = np.stack([right, down, fwd], axis=1)  # columns: optical axes in world
    return pos, _quat_xyzw(rot)


def _quat_xyzw(m: np.ndarray) -> np.ndarray:
    """Rotation matrix -> unit quaternion (x, y, z, w), w >= 0."""
    from transforms3d.quaternions import mat2quat

    w, x, y, z = mat2quat(m)
    q = np.array([x, y, z, w], float)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q
