"""Pose of the simulator's camera (ROS-free, so the memory evaluation and
sim_camera_node share one definition)."""

from __future__ import annotations

import math

import numpy as np


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
