"""Scripted episodes: a seed -> a timed list of events -> frames + ground truth.

An :class:`EpisodeScript` is a pure function of ``(seed, split, config)``. Its
events never overlap. Frame ``i`` is shown at ``t = i / fps``. An event
occupies the frames ``frame_start .. frame_end`` (inclusive); instant events
(place, remove, lamp) have ``frame_start == frame_end`` and their new state is
visible from that frame on. A push moves the arm for ``frame_end -
frame_start + 1`` frames (0.6-1.0 s by default); the pushed object changes cell
when the pusher finishes its stroke (``frame_contact_end``) and the arm is back
home at ``frame_end + 1``.

State dicts (used by captions and the dataset)::

    {"objects": [{"colour", "shape", "cell": [col, row], "where"}...],  # sorted
     "lamp_on": bool,
     "arm": None | {"kind": "push", "colour", "shape", "direction"}}
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from .world import (
    COLOURS,
    DIRECTIONS,
    OBJ_HALF,
    PUSH_Z,
    SHAPES,
    SceneParams,
    TabletopWorld,
    cell_name,
    cell_xy,
    step_cell,
)

ALL_CELLS = [(c, r) for r in range(2) for c in range(3)]

DEFAULT_HELD_OUT = (("purple", "cylinder"), ("yellow", "ball"))


@dataclass
class EpisodeConfig:
    """Parameters of the episode generator (see config/sim_world.yaml)."""

    fps: float = 15.0
    duration_s: tuple[float, float] = (30.0, 60.0)
    max_objects: int = 3
    # probability of 0/1/2/3 objects at the start
    initial_objects_p: tuple[float, ...] = (0.05, 0.45, 0.40, 0.10)
    # interval between the starts of consecutive changes: a mixture
    quick_p: float = 0.12  # quick successions
    quick_s: tuple[float, float] = (0.25, 0.9)
    long_p: float = 0.15  # long quiet stretches
    long_s: tuple[float, float] = (10.5, 20.0)
    normal_s: tuple[float, float] = (2.0, 8.0)
    first_event_s: tuple[float, float] = (1.0, 5.0)
    push_duration_s: tuple[float, float] = (0.6, 1.0)
    # relative weights of the action kinds (only legal actions are drawn)
    kind_weights: dict[str, float] = field(
        default_factory=lambda: {"push": 4.0, "place": 2.0, "remove": 1.5, "lamp": 1.5}
    )
    held_out: tuple[tuple[str, str], ...] = DEFAULT_HELD_OUT
    # camera jitter (offsets added to the default camera): train/val vs test
    # are disjoint in azimuth
    cam_azimuth_train: tuple[float, float] = (-8.0, 8.0)
    cam_azimuth_test_abs: tuple[float, float] = (11.0, 18.0)  # +- this range
    # optional outer training band (either side, beyond the test band): with
    # probability cam_azimuth_train_outer_p a train/val view is drawn from +-this
    # range instead, so the held-out test poses lie between training poses
    # (still never seen) instead of beyond them
    cam_azimuth_train_outer_abs: tuple[float, float] | None = None
    cam_azimuth_train_outer_p: float = 0.0
    cam_elevation: tuple[float, float] = (-50.0, -40.0)
    cam_distance: tuple[float, float] = (1.12, 1.28)
    cam_lookat_jitter: float = 0.03
    lamp_intensity: tuple[float, float] = (0.6, 1.0)
    ambient: tuple[float, float] = (0.28, 0.42)
    headlight: tuple[float, float] = (0.22, 0.38)

    def __post_init__(self):
        if not 0.0 <= self.cam_azimuth_train_outer_p <= 1.0:
            raise ValueError(f"cam_azimuth_train_outer_p must be in [0, 1], got {self.cam_azimuth_train_outer_p}")
        if self.cam_azimuth_train_outer_p > 0:
            if self.cam_azimuth_train_outer_abs is None:
                raise ValueError("cam_azimuth_train_outer_p > 0 needs cam_azimuth_train_outer_abs")
            lo, hi = self.cam_azimuth_train_outer_abs
            t_lo, t_hi = self.cam_azimuth_test_abs
            if not (lo <= hi and (lo > t_hi or hi < t_lo)):
                raise ValueError(f"cam_azimuth_train_outer_abs {self.cam_azimuth_train_outer_abs} must not overlap "
                                 f"the held-out test band {self.cam_azimuth_test_abs}")

    def to_dict(self) -> dict:
        d = copy.deepcopy(self.__dict__)
        d["held_out"] = [list(x) for x in self.held_out]
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: dict) -> EpisodeConfig:
        kw = {}
        for k, v in d.items():
            if k not in cls.__dataclass_fields__:
                continue
            if k == "held_out":
                v = tuple(tuple(x) for x in v)
            elif isinstance(v, list):
                v = tuple(v)
            kw[k] = v
        return cls(**kw)


@dataclass
class Event:
    id: str
    kind: str  # push | place | remove | lamp_on | lamp_off
    frame_start: int
    frame_end: int
    colour: str | None = None
    shape: str | None = None
    direction: str | None = None
    from_cell: tuple[int, int] | None = None
    to_cell: tuple[int, int] | None = None
    frame_contact_end: int | None = None

    def action(self) -> dict:
        """Action dict for captions: {"kind", "colour", "shape", "direction", "cell"}."""
        a = {"kind": self.kind}
        if self.colour:
            a["colour"] = self.colour
            a["shape"] = self.shape
        if self.direction:
            a["direction"] = self.direction
        if self.kind == "place" and self.to_cell is not None:
            a["cell"] = list(self.to_cell)
        return a


@dataclass
class FrameTruth:
    frame: int
    t: float
    objects: list[dict]
    lamp_on: bool
    arm_moving: bool
    arm: dict | None
    transition_id: str | None  # event in progress at this frame
    last_transition_id: str | None  # most recent event started at or before

    def state(self) -> dict:
        return {"objects": self.objects, "lamp_on": self.lamp_on, "arm": self.arm}


def _obj_dict(colour, shape, cell) -> dict:
    return {"colour": colour, "shape": shape, "cell": [int(cell[0]), int(cell[1])],
            "where": cell_name(cell)}


def sort_objects(objs: Sequence[dict]) -> list[dict]:
    """Canonical order: by row (front first), column (left first), then name."""
    return sorted(objs, key=lambda o: (o["cell"][1], o["cell"][0], o["colour"], o["shape"]))


@dataclass
class EpisodeScript:
    seed: int
    split: str
    fps: float
    n_frames: int
    params: SceneParams
    initial_objects: list[tuple[str, str, tuple[int, int]]]
    initial_lamp: bool
    events: list[Event]

    # ------------------------------------------------------------ generation
    @classmethod
    def generate(
        cls, seed: int, split: str = "train", config: EpisodeConfig | None = None
    ) -> EpisodeScript:
        cfg = config or EpisodeConfig()
        rng = np.random.default_rng([int(seed), {"train": 0, "val": 1, "test": 2}.get(split, 3)])
        fps = float(cfg.fps)
        n_frames = int(round(rng.uniform(*cfg.duration_s) * fps))
        held = {tuple(x) for x in cfg.held_out}
        all_comps = [(c, s) for c in COLOURS for s in SHAPES]
        comps = all_comps if split == "test" else [x for x in all_comps if x not in held]
        params = _sample_params(rng, cfg, split)

        def pick_comp(occupied) -> tuple[str, str] | None:
            free = [x for x in comps if x not in occupied]
            if not free:
                return None
            if split == "test":
                h = [x for x in free if x in held]
                if h and rng.random() < 0.5:
                    return h[int(rng.integers(len(h)))]
            return free[int(rng.integers(len(free)))]

        n0 = int(rng.choice(len(cfg.initial_objects_p),
                            p=np.asarray(cfg.initial_objects_p) / sum(cfg.initial_objects_p)))
        n0 = min(n0, cfg.max_objects)
        if split == "test":
            n0 = max(n0, 1)
        cells = [ALL_CELLS[i] for i in rng.permutation(len(ALL_CELLS))[:n0]]
        objs: dict[tuple[str, str], tuple[int, int]] = {}
        for k, cell in enumerate(cells):
            if split == "test" and k == 0:
                comp = sorted(held)[int(rng.integers(len(held)))]
            else:
                comp = pick_comp(objs)
            objs[comp] = cell
        initial = [(c, s, cell) for (c, s), cell in objs.items()]
        lamp = bool(rng.random() < 0.8)
        init_lamp = lamp

        events: list[Event] = []
        frame = int(round(rng.uniform(*cfg.first_event_s) * fps))
        prev_end = -1
        while True:
            frame = max(frame, prev_end + 2)
            if frame >= n_frames - int(fps):  # keep >= 1 s of settled frames at the end
                break
            ev = _sample_event(rng, cfg, objs, lamp, pick_comp, frame, fps, len(events))
            if ev.frame_end >= n_frames - int(fps):
                break
            events.append(ev)
            if ev.kind == "push":
                objs[(ev.colour, ev.shape)] = ev.to_cell
            elif ev.kind == "place":
                objs[(ev.colour, ev.shape)] = ev.to_cell
            elif ev.kind == "remove":
                del objs[(ev.colour, ev.shape)]
            else:
                lamp = ev.kind == "lamp_on"
            prev_end = ev.frame_end
            u = rng.random()
            if u < cfg.quick_p:
                gap = rng.uniform(*cfg.quick_s)
            elif u < cfg.quick_p + cfg.long_p:
                gap = rng.uniform(*cfg.long_s)
            else:
                gap = rng.uniform(*cfg.normal_s)
            frame = ev.frame_start + max(1, int(round(gap * fps)))
        return cls(int(seed), split, fps, n_frames, params, initial, init_lamp, events)

    # --------------------------------------------------------------- queries
    def change_times(self) -> list[float]:
        return [e.frame_start / self.fps for e in self.events]

    def iter_truth(self) -> Iterator[tuple[FrameTruth, dict]]:
        """Yields (FrameTruth, pose) per frame; pose = {"tip": xyz or None,
        "moving_object": (colour, shape, xy) or None} for the renderer."""
        objs = {(c, s): tuple(cell) for c, s, cell in self.initial_objects}
        lamp = self.initial_lamp
        ev_by_start = {e.frame_start: e for e in self.events}
        cur: Event | None = None
        last_id: str | None = None
        for i in range(self.n_frames):
            if i in ev_by_start:
                cur = ev_by_start[i]
                last_id = cur.id
                if cur.kind == "place":
                    objs[(cur.colour, cur.shape)] = cur.to_cell
                elif cur.kind == "remove":
                    objs.pop((cur.colour, cur.shape), None)
                elif cur.kind in ("lamp_on", "lamp_off"):
                    lamp = cur.kind == "lamp_on"
            pose = {"tip": None, "moving_object": None}
            arm = None
            active = cur.id if cur is not None and cur.frame_start <= i <= cur.frame_end else None
            if cur is not None and cur.kind == "push" and active:
                u = (i - cur.frame_start + 1) / (cur.frame_end - cur.frame_start + 2)
                tip, oxy, done = push_pose(cur.from_cell, cur.direction, u)
                pose["tip"] = tip
                key = (cur.colour, cur.shape)
                if done:
                    objs[key] = cur.to_cell
                pose["moving_object"] = (cur.colour, cur.shape, oxy)
                arm = {"kind": "push", "colour": cur.colour, "shape": cur.shape,
                       "direction": cur.direction}
            truth = FrameTruth(
                frame=i,
                t=i / self.fps,
                objects=sort_objects([_obj_dict(c, s, cell) for (c, s), cell in objs.items()]),
                lamp_on=lamp,
                arm_moving=arm is not None,
                arm=arm,
                transition_id=active,
                last_transition_id=last_id,
            )
            yield truth, pose
            if cur is not None and i >= cur.frame_end:
                if cur.kind == "push":
                    objs[(cur.colour, cur.shape)] = cur.to_cell
                cur = None

    def truths(self) -> list[FrameTruth]:
        return [t for t, _ in self.iter_truth()]

    def transitions(self, truths: list[FrameTruth] | None = None) -> list[dict]:
        """One dict per event: id, kind, action, frames, before/after windows
        (static frames around it) and before/after states."""
        truths = truths if truths is not None else self.truths()
        out = []
        for k, e in enumerate(self.events):
            a = self.events[k - 1].frame_end + 1 if k > 0 else 0
            b = e.frame_start - 1
            c = e.frame_end + 1
            d = self.events[k + 1].frame_start - 1 if k + 1 < len(self.events) else self.n_frames - 1
            before = truths[b].state() if b >= 0 else None
            after = truths[min(c, self.n_frames - 1)].state()
            out.append({
                "id": e.id,
                "kind": e.kind,
                "action": e.action(),
                "frame_start": e.frame_start,
                "frame_end": e.frame_end,
                "t_start": e.frame_start / self.fps,
                "t_end": (e.frame_end + 1) / self.fps,
                "before_frames": [a, b] if b >= a else None,
                "after_frames": [c, d] if d >= c else None,
                "before_state": before,
                "after_state": after,
            })
        return out

    def to_dict(self) -> dict:
        return {
            "seed": self.seed,
            "split": self.split,
            "fps": self.fps,
            "n_frames": self.n_frames,
            "params": self.params.to_dict(),
            "initial_objects": [[c, s, list(cell)] for c, s, cell in self.initial_objects],
            "initial_lamp": self.initial_lamp,
            "events": [
                {**e.__dict__,
                 "from_cell": list(e.from_cell) if e.from_cell else None,
                 "to_cell": list(e.to_cell) if e.to_cell else None}
                for e in self.events
            ],
        }

    # ------------------------------------------------------------- rendering
    def frames(
        self, world: TabletopWorld | None = None, width: int = 224, height: int = 224
    ) -> Iterator[tuple[int, float, np.ndarray, FrameTruth]]:
        """Render the episode: yields (frame_index, t, rgb uint8 HxWx3, FrameTruth)."""
        own = world is None
        w = world or TabletopWorld()
        try:
            w.reset()
            w.set_params(self.params)
            q_prev = w.q_home
            for truth, pose in self.iter_truth():
                w.set_lamp(truth.lamp_on)
                w.set_objects(
                    _ObjView(o["colour"], o["shape"], tuple(o["cell"])) for o in truth.objects
                )
                if pose["moving_object"] is not None:
                    c, s, xy = pose["moving_object"]
                    w.set_object_xy(c, s, xy)
                if pose["tip"] is not None:
                    q_prev = w.solve_ik(pose["tip"], q_prev, iters=40)
                else:
                    w.set_arm_home()
                    q_prev = w.q_home
                rgb = w.render(width, height)
                yield truth.frame, truth.t, rgb, truth
        finally:
            if own:
                w.close()


@dataclass
class _ObjView:
    colour: str
    shape: str
    cell: tuple[int, int]


def _smooth(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)


def push_pose(from_cell, direction: str, u: float):
    """Pusher tip and object xy at phase u in (0, 1) of a push.

    Returns (tip_xyz, object_xy, done) where done means the stroke is over and
    the object rests in its new cell."""
    dc, dr = DIRECTIONS[direction]
    p_from = cell_xy(from_cell)
    p_to = cell_xy((from_cell[0] + dc, from_cell[1] + dr))
    dvec = (p_to - p_from) / np.linalg.norm(p_to - p_from)
    back = OBJ_HALF * 1.15 + 0.016
    home = TabletopWorld.HOME_TIP
    p0 = np.array([*(p_from - dvec * back), PUSH_Z])
    p1 = np.array([*(p_to - dvec * back), PUSH_Z])
    a0 = p0 + [0, 0, 0.12]
    a1 = p1 + [0, 0, 0.12]
    keys = [(0.0, home), (0.25, a0), (0.40, p0), (0.75, p1), (0.85, a1), (1.0, home)]
    for (u0, x0), (u1, x1) in zip(keys[:-1], keys[1:]):
        if u <= u1:
            s = _smooth((u - u0) / (u1 - u0))
            tip = np.asarray(x0) + s * (np.asarray(x1) - np.asarray(x0))
            break
    else:
        tip = np.asarray(home, float)
    if u < 0.40:
        oxy = p_from
    elif u < 0.75:
        oxy = p_from + _smooth((u - 0.40) / 0.35) * (p_to - p_from)
    else:
        oxy = p_to
    return tip, np.asarray(oxy, float), u >= 0.75


def _sample_params(rng, cfg: EpisodeConfig, split: str) -> SceneParams:
    base = SceneParams()
    if split == "test":
        lo, hi = cfg.cam_azimuth_test_abs
        daz = rng.uniform(lo, hi) * (1 if rng.random() < 0.5 else -1)
    elif cfg.cam_azimuth_train_outer_p > 0 and rng.random() < cfg.cam_azimuth_train_outer_p:
        lo, hi = cfg.cam_azimuth_train_outer_abs
        daz = rng.uniform(lo, hi) * (1 if rng.random() < 0.5 else -1)
    else:
        daz = rng.uniform(*cfg.cam_azimuth_train)
    look = np.asarray(base.cam_lookat) + rng.uniform(-1, 1, 3) * cfg.cam_lookat_jitter * np.array([1, 1, 0.5])
    # table: warm browns to greys; floor: dark neutrals
    tbase = np.array([0.55, 0.42, 0.30]) if rng.random() < 0.6 else np.full(3, 0.55)
    table = np.clip(tbase + rng.uniform(-0.12, 0.12, 3) * [1, 1, 1], 0.2, 0.85)
    floor = np.clip(np.full(3, rng.uniform(0.2, 0.5)) + rng.uniform(-0.06, 0.06, 3), 0.05, 0.8)
    return SceneParams(
        cam_azimuth=90.0 + float(daz),
        cam_elevation=float(rng.uniform(*cfg.cam_elevation)),
        cam_distance=float(rng.uniform(*cfg.cam_distance)),
        cam_lookat=tuple(float(v) for v in look),
        table_rgb=tuple(float(v) for v in table),
        floor_rgb=tuple(float(v) for v in floor),
        lamp_intensity=float(rng.uniform(*cfg.lamp_intensity)),
        ambient=float(rng.uniform(*cfg.ambient)),
        headlight=float(rng.uniform(*cfg.headlight)),
    )


def _sample_event(rng, cfg, objs, lamp, pick_comp, frame, fps, k) -> Event:
    n = len(objs)
    occupied_cells = set(objs.values())
    free_cells = [c for c in ALL_CELLS if c not in occupied_cells]
    pushes = []
    for key in sorted(objs):
        for dname in DIRECTIONS:
            nc = step_cell(objs[key], dname)
            if nc is not None and nc not in occupied_cells:
                pushes.append((key, dname, nc))
    w = dict(cfg.kind_weights)
    options = {}
    if pushes:
        options["push"] = w["push"]
    if n < cfg.max_objects and free_cells and pick_comp(objs) is not None:
        # favour 1-2 objects
        options["place"] = w["place"] * (2.0 if n == 0 else 1.0 if n == 1 else 0.4)
    if n > 0:
        options["remove"] = w["remove"] * (0.3 if n == 1 else 1.0 if n == 2 else 2.5)
    options["lamp"] = w["lamp"] * (2.0 if not lamp else 1.0)
    kinds = sorted(options)
    p = np.array([options[x] for x in kinds], float)
    kind = kinds[int(rng.choice(len(kinds), p=p / p.sum()))]
    eid = f"e{k:03d}"
    if kind == "push":
        (c, s), dname, nc = pushes[int(rng.integers(len(pushes)))]
        nfr = max(3, int(round(rng.uniform(*cfg.push_duration_s) * fps)))
        end = frame + nfr - 1
        # stroke ends at u = 0.75 with u = (i - start + 1) / (nfr + 1)
        contact_end = frame + int(np.ceil(0.75 * (nfr + 1))) - 1
        return Event(eid, "push", frame, end, c, s, dname, objs[(c, s)], nc, contact_end)
    if kind == "place":
        c, s = pick_comp(objs)
        cell = free_cells[int(rng.integers(len(free_cells)))]
        return Event(eid, "place", frame, frame, c, s, None, None, cell)
    if kind == "remove":
        keys = sorted(objs)
        c, s = keys[int(rng.integers(len(keys)))]
        return Event(eid, "remove", frame, frame, c, s, None, objs[(c, s)], None)
    return Event(eid, "lamp_off" if lamp else "lamp_on", frame, frame)
