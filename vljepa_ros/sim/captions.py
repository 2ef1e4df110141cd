"""Ground-truth text: canonical captions, paraphrases, action labels, distractors.

All functions take plain dicts (the JSON stored in the dataset):

* state: ``{"objects": [{"colour", "shape", "cell": [col, row]}...], "lamp_on": bool,
  "arm": None | {"kind": "push", "colour", "shape", "direction"}}``
* action: ``{"kind": "push"|"place"|"remove"|"lamp_on"|"lamp_off",
  "colour", "shape", "direction"}``

The canonical caption is a deterministic function of the state (objects sorted
front-to-back, left-to-right). Paraphrases are drawn deterministically from a
seed and vary wording and object order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

COLOURS = ("red", "green", "blue", "yellow", "purple")
SHAPES = ("cube", "ball", "cylinder")
COLUMNS = ("left", "center", "right")
ROWS = ("front", "back")
DIRECTIONS = ("left", "right", "forward", "back")
_DELTA = {"left": (-1, 0), "right": (1, 0), "forward": (0, -1), "back": (0, 1)}

SHAPE_SYNONYMS = {
    "cube": ("cube", "block", "box"),
    "ball": ("ball", "sphere", "ball"),
    "cylinder": ("cylinder", "can", "cylinder"),
}
# paraphrase templates per fact (index 0 is canonical)
OBJECT_TEMPLATES = (
    "a {colour} {shape} on the {row} {col}",
    "a {colour} {syn} at the {row} {col} of the table",
    "a {syn} that is {colour}, {row} {col}",
    "one {colour} {syn} in the {row}-{col} spot",
)
LAMP_TEMPLATES = {
    True: ("the lamp is on", "the room is lit", "the light is switched on", "the lamp is shining"),
    False: ("the lamp is off", "the room is dark", "the light is switched off", "the lamp is dark"),
}
EMPTY_TEMPLATES = (
    "the table is empty",
    "there is nothing on the table",
    "no objects are on the table",
    "the tabletop is bare",
)
ARM_TEMPLATES = (
    "the arm is pushing the {colour} {shape} {dir}",
    "the robot is moving the {colour} {syn} {dir}",
    "the robot arm slides the {colour} {syn} {dir}",
)
ACTION_TEMPLATES = {
    "push": (
        "push the {colour} {shape} {dir}",
        "the robot pushes the {colour} {syn} {dir}",
        "slide the {colour} {syn} {dir}",
        "move the {colour} {syn} one spot {dir}",
    ),
    "place": (
        "place a {colour} {shape}",
        "a {colour} {syn} is put on the table",
        "put down a {colour} {syn}",
        "a {colour} {syn} appears",
    ),
    "remove": (
        "remove the {colour} {shape}",
        "the {colour} {syn} is taken away",
        "take the {colour} {syn} off the table",
        "the {colour} {syn} disappears",
    ),
    "lamp_on": (
        "turn the lamp on",
        "switch the light on",
        "the lamp turns on",
        "the room lights up",
    ),
    "lamp_off": (
        "turn the lamp off",
        "switch the light off",
        "the lamp turns off",
        "the room goes dark",
    ),
}
DIR_TEXT = {
    "left": ("to the left", "leftward", "to the left side"),
    "right": ("to the right", "rightward", "to the right side"),
    "forward": ("forward", "toward the camera", "to the front"),
    "back": ("back", "away from the camera", "to the back"),
}
COL_TEXT = {"left": ("left",), "center": ("center", "middle"), "right": ("right",)}
ROW_TEXT = {"front": ("front", "near"), "back": ("back", "far")}


def _cell(o) -> tuple:
    return (int(o["cell"][0]), int(o["cell"][1]))


def sorted_objects(objects: Sequence[dict]) -> list[dict]:
    return sorted(objects, key=lambda o: (_cell(o)[1], _cell(o)[0], o["colour"], o["shape"]))


def object_phrase(o: dict, variant: int = 0, rng: random.Random | None = None) -> str:
    col, row = _cell(o)
    cn, rn = COLUMNS[col], ROWS[row]
    if variant == 0:
        return OBJECT_TEMPLATES[0].format(colour=o["colour"], shape=o["shape"], row=rn, col=cn)
    r = rng or random.Random(variant)
    return OBJECT_TEMPLATES[variant % len(OBJECT_TEMPLATES)].format(
        colour=o["colour"],
        shape=o["shape"],
        syn=r.choice(SHAPE_SYNONYMS[o["shape"]]),
        row=r.choice(ROW_TEXT[rn]),
        col=r.choice(COL_TEXT[cn]),
    )


def lamp_phrase(on: bool, variant: int = 0) -> str:
    t = LAMP_TEMPLATES[bool(on)]
    return t[variant % len(t)]


def arm_phrase(arm: dict | None, variant: int = 0, rng=None) -> str | None:
    if not arm:
        return None
    r = rng or random.Random(variant)
    return ARM_TEMPLATES[variant % len(ARM_TEMPLATES)].format(
        colour=arm["colour"], shape=arm["shape"],
        syn=SHAPE_SYNONYMS[arm["shape"]][0] if variant == 0 else r.choice(SHAPE_SYNONYMS[arm["shape"]]),
        dir=DIR_TEXT[arm["direction"]][0 if variant == 0 else r.randrange(3)],
    )


def _join(parts: list[str]) -> str:
    if not parts:
        return ""
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def state_caption(state: dict) -> str:
    """Canonical caption: e.g. "a red cube on the front left and a blue ball
    on the back right; the lamp is on" (+ "; the arm is pushing ..." while moving)."""
    objs = sorted_objects(state.get("objects", []))
    head = _join([object_phrase(o) for o in objs]) if objs else EMPTY_TEMPLATES[0]
    parts = [head, lamp_phrase(state["lamp_on"])]
    a = arm_phrase(state.get("arm"))
    if a:
        parts.append(a)
    return "; ".join(parts)


def scene_caption(state: dict) -> str:
    """The caption of the state the scene is in: the canonical caption without
    the arm phrase (while the arm pushes an object the scene is still in its
    state before). What events, benchmarks and the demo score against."""
    return state_caption(dict(state, arm=None))


def state_paraphrases(state: dict, n: int = 4, seed: int = 0) -> list[str]:
    """n paraphrases (different wording/order; never the canonical one)."""
    canon = state_caption(state)
    r = random.Random(f"{seed}|{canon}")
    out: list[str] = []
    for k in range(n * 4):
        v = 1 + (k % (len(OBJECT_TEMPLATES) - 1))
        objs = list(state.get("objects", []))
        r.shuffle(objs)
        if objs:
            head = _join([object_phrase(o, v, r) for o in objs])
            if r.random() < 0.3:
                head = "on the table: " + head
        else:
            head = EMPTY_TEMPLATES[1 + r.randrange(len(EMPTY_TEMPLATES) - 1)]
        parts = [head, lamp_phrase(state["lamp_on"], 1 + r.randrange(3))]
        if r.random() < 0.3:
            parts = parts[::-1]
        a = arm_phrase(state.get("arm"), 1 + r.randrange(len(ARM_TEMPLATES) - 1), r)
        if a:
            parts.append(a)
        sep = r.choice(["; ", ", ", ". "])
        text = sep.join(parts)
        if text != canon and text not in out:
            out.append(text)
        if len(out) >= n:
            break
    return out


def action_text(action: dict) -> str:
    """Canonical action label: "push the red cube to the left", "place a green
    ball", "remove the blue cylinder", "turn the lamp off"."""
    return _action(action, 0, None)


def _action(action: dict, variant: int, r) -> str:
    k = action["kind"]
    t = ACTION_TEMPLATES[k][variant % len(ACTION_TEMPLATES[k])]
    if k in ("lamp_on", "lamp_off"):
        return t
    shape = action["shape"]
    return t.format(
        colour=action["colour"],
        shape=shape,
        syn=shape if r is None else r.choice(SHAPE_SYNONYMS[shape]),
        dir=DIR_TEXT[action["direction"]][0 if r is None else r.randrange(3)]
        if action.get("direction") else "",
    )


def action_paraphrases(action: dict, n: int = 3, seed: int = 0) -> list[str]:
    canon = action_text(action)
    r = random.Random(f"{seed}|{canon}")
    out: list[str] = []
    for k in range(n * 6):
        v = 1 + (k % (len(ACTION_TEMPLATES[action["kind"]]) - 1))
        s = _action(action, v, r)
        if s != canon and s not in out:
            out.append(s)
        if len(out) >= n:
            break
    return out


# ------------------------------------------------------------------ dynamics
def apply_action(state: dict, action: dict) -> dict | None:
    """Resulting settled state, or None when the action is illegal here."""
    objs = [dict(o, cell=list(_cell(o))) for o in state.get("objects", [])]
    key = (action.get("colour"), action.get("shape"))
    idx = [i for i, o in enumerate(objs) if (o["colour"], o["shape"]) == key]
    k = action["kind"]
    lamp = state["lamp_on"]
    if k == "lamp_on":
        if lamp:
            return None
        lamp = True
    elif k == "lamp_off":
        if not lamp:
            return None
        lamp = False
    elif k == "remove":
        if not idx:
            return None
        objs.pop(idx[0])
    elif k == "place":
        if idx or len(objs) >= 3:
            return None
        occ = {_cell(o) for o in objs}
        cell = action.get("cell")
        if cell is None:
            free = [(c, r) for r in range(2) for c in range(3) if (c, r) not in occ]
            if not free:
                return None
            cell = free[0]
        objs.append({"colour": key[0], "shape": key[1], "cell": list(cell)})
    elif k == "push":
        if not idx:
            return None
        o = objs[idx[0]]
        dc, dr = _DELTA[action["direction"]]
        c, r = o["cell"][0] + dc, o["cell"][1] + dr
        if not (0 <= c < 3 and 0 <= r < 2) or (c, r) in {_cell(x) for x in objs}:
            return None
        o["cell"] = [c, r]
    for o in objs:
        o["where"] = f"{ROWS[o['cell'][1]]} {COLUMNS[o['cell'][0]]}"
    return {"objects": sorted_objects(objs), "lamp_on": lamp, "arm": None}


def _all_actions(colours=COLOURS, shapes=SHAPES) -> list[dict]:
    acts = [{"kind": "lamp_on"}, {"kind": "lamp_off"}]
    for c in colours:
        for s in shapes:
            acts.append({"kind": "place", "colour": c, "shape": s})
            acts.append({"kind": "remove", "colour": c, "shape": s})
            for d in DIRECTIONS:
                acts.append({"kind": "push", "colour": c, "shape": s, "direction": d})
    return acts


def action_distractors(action: dict, state: dict | None = None, seed: int = 0) -> list[str]:
    """3 distractor action texts: [same object / other action, other object /
    same action, random]. All differ from the true action and from each other.
    ``state`` (the before-state) is used to prefer objects in the scene."""
    r = random.Random(f"{seed}|{action_text(action)}")
    true = action_text(action)
    used = {true}
    k = action["kind"]
    objs = [(o["colour"], o["shape"]) for o in (state or {}).get("objects", [])]

    def pick(cands):
        cands = [c for c in cands if action_text(c) not in used]
        c = cands[r.randrange(len(cands))]
        used.add(action_text(c))
        return action_text(c)

    # 1) same object, other action
    if k in ("lamp_on", "lamp_off"):
        same_obj = [{"kind": "lamp_off" if k == "lamp_on" else "lamp_on"}]
    else:
        o = {"colour": action["colour"], "shape": action["shape"]}
        same_obj = [dict(o, kind="remove"), dict(o, kind="place")] + [
            dict(o, kind="push", direction=d) for d in DIRECTIONS
        ]
        same_obj = [a for a in same_obj if action_text(a) != true]
    d1 = pick(same_obj)
    # 2) other object, same action
    if k in ("lamp_on", "lamp_off"):
        other = [a for a in _all_actions() if a["kind"] in ("place", "remove")
                 and (not objs or (a["colour"], a["shape"]) in objs or a["kind"] == "place")]
    else:
        others = [o for o in objs if o != (action["colour"], action["shape"])]
        if not others:
            others = [(c, s) for c in COLOURS for s in SHAPES
                      if (c, s) != (action["colour"], action["shape"])]
        other = [dict(action, colour=c, shape=s) for c, s in others]
    d2 = pick(other)
    # 3) random
    d3 = pick(_all_actions())
    return [d1, d2, d3]


def outcome_distractors(before: dict, action: dict, after: dict, seed: int = 0) -> list[str]:
    """3 distractor state captions for 'which state follows this action':
    [unchanged before-state or another action's result, result of a related
    action, a random legal result]; all differ from the true after-state."""
    r = random.Random(f"{seed}|{state_caption(before)}|{action_text(action)}")
    true = scene_caption(after)
    used = {true}
    out: list[str] = []

    def add(st) -> bool:
        if st is None:
            return False
        c = scene_caption(st)
        if c in used:
            return False
        used.add(c)
        out.append(c)
        return True

    add(before)  # nothing happened
    related = []
    if action["kind"] == "push":
        related = [dict(action, direction=d) for d in DIRECTIONS]
        related += [{"kind": "push", "colour": o["colour"], "shape": o["shape"],
                     "direction": action["direction"]} for o in before.get("objects", [])]
    elif action["kind"] in ("place", "remove"):
        related = [dict(action, kind="place" if action["kind"] == "remove" else "remove")]
        related += [dict(action, colour=c) for c in COLOURS]
        related += [dict(action, shape=s) for s in SHAPES]
    related += [{"kind": "lamp_on"}, {"kind": "lamp_off"}]
    r.shuffle(related)
    for a in related:
        if len(out) >= 2:
            break
        add(apply_action(before, a))
    acts = _all_actions()
    r.shuffle(acts)
    for a in acts:
        if len(out) >= 3:
            break
        add(apply_action(before, a))
    # fallback: flip the lamp of the true result / random placements
    while len(out) < 3:
        st = dict(after, lamp_on=not after["lamp_on"]) if len(out) == 0 else {
            "objects": [{"colour": r.choice(COLOURS), "shape": r.choice(SHAPES),
                         "cell": [r.randrange(3), r.randrange(2)]}],
            "lamp_on": r.random() < 0.5, "arm": None}
        add(st)
    return out[:3]


def random_state(rng: random.Random, max_objects: int = 3) -> dict:
    """A uniformly drawn legal state: 0..max_objects distinct colour-shape
    pairs on distinct cells, the lamp on or off, the arm still."""
    cells = [(c, r) for r in range(len(ROWS)) for c in range(len(COLUMNS))]
    n = rng.randint(0, max_objects)
    pairs = rng.sample([(c, s) for c in COLOURS for s in SHAPES], n)
    objs = [{"colour": c, "shape": s, "cell": list(cell)} for (c, s), cell in zip(pairs, rng.sample(cells, n))]
    return {"objects": objs, "lamp_on": rng.random() < 0.5, "arm": None}


def state_bank(max_objects: int = 1) -> list[str]:
    """Canonical captions of all states with up to ``max_objects`` objects
    (for classification banks; 2 objects is ~ 7,000 phrases)."""
    import itertools

    cells = [(c, r) for r in range(2) for c in range(3)]
    comps = [(c, s) for c in COLOURS for s in SHAPES]
    out = []
    for n in range(max_objects + 1):
        for combo in itertools.combinations(comps, n):
            for cs in itertools.permutations(cells, n):
                objs = [{"colour": c, "shape": s, "cell": list(cell)} for (c, s), cell in zip(combo, cs)]
                for lamp in (True, False):
                    out.append(state_caption({"objects": objs, "lamp_on": lamp}))
    return sorted(set(out))
