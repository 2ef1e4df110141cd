"""Read a state back from caption text: the inverse of ``captions.state_caption``
and ``captions.state_paraphrases``, built from the same vocabulary.

It scores decoded text with no candidate set at all: "is the generated
sentence the true state?" instead of "is the true state the nearest of a
list?" (a list that holds the truth makes a wrong sentence look right when
its nearest neighbour happens to be the truth).

    parse_state("a red cube on the front left; the lamp is on")
    -> {"objects": [{"colour": "red", "shape": "cube", "cell": [0, 0]}], "lamp_on": True}

Returns None when the text is not a complete state description (an object
without colour, shape or cell; no lamp clause; neither objects nor "the table
is empty"; the same object or cell twice).
"""

from __future__ import annotations

import re

from .captions import (
    ARM_TEMPLATES,
    COL_TEXT,
    COLOURS,
    COLUMNS,
    EMPTY_TEMPLATES,
    LAMP_TEMPLATES,
    ROW_TEXT,
    ROWS,
    SHAPE_SYNONYMS,
)

_SHAPE_OF = {syn: shape for shape, syns in SHAPE_SYNONYMS.items() for syn in syns}
_COL_OF = {w: COLUMNS.index(c) for c, words in COL_TEXT.items() for w in words}
_ROW_OF = {w: ROWS.index(r) for r, words in ROW_TEXT.items() for w in words}
_LAMP_OF = {t: on for on, texts in LAMP_TEMPLATES.items() for t in texts}
_ARM_OPENINGS = tuple(t.split("{")[0].strip() for t in ARM_TEMPLATES)  # "the arm is pushing the", ...
_SPLIT = re.compile(r";|\.|,| and ")


def _words(clause: str) -> list[str]:
    return re.findall(r"[a-z]+", clause)


def parse_state(text: str) -> dict | None:
    lamp = None
    empty = False
    objects: list[dict] = []
    pending_position = None  # "a block that is red, front left": the cell comes in the next fragment
    for raw in _SPLIT.split(text.lower()):
        clause = raw.strip().removeprefix("on the table:").strip()
        if not clause:
            continue
        if clause in _LAMP_OF:
            if lamp is not None and lamp != _LAMP_OF[clause]:
                return None
            lamp = _LAMP_OF[clause]
            continue
        if clause in EMPTY_TEMPLATES:
            empty = True
            continue
        if clause.startswith(_ARM_OPENINGS):
            continue  # the arm phrase describes motion, not the settled state
        words = _words(clause)
        colour = next((w for w in words if w in COLOURS), None)
        shape = next((_SHAPE_OF[w] for w in words if w in _SHAPE_OF), None)
        col = next((_COL_OF[w] for w in words if w in _COL_OF), None)
        row = next((_ROW_OF[w] for w in words if w in _ROW_OF), None)
        if colour is None and shape is None and col is not None and row is not None and pending_position:
            pending_position["cell"] = [col, row]
            pending_position = None
            continue
        if colour is None or shape is None:
            return None
        obj = {"colour": colour, "shape": shape, "cell": None if col is None or row is None else [col, row]}
        objects.append(obj)
        pending_position = obj if obj["cell"] is None else None
    if lamp is None or empty == bool(objects) or any(o["cell"] is None for o in objects):
        return None
    keys = [(o["colour"], o["shape"]) for o in objects]
    cells = [tuple(o["cell"]) for o in objects]
    if len(set(keys)) != len(keys) or len(set(cells)) != len(cells):
        return None
    return {"objects": objects, "lamp_on": lamp}
