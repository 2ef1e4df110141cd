"""The training and evaluation tasks, built from one split of the dataset.

Every task is (visual window(s), query text) -> answer text, so one predictor
learns all of them through the same InfoNCE loss (VL-JEPA: no architecture
change per task):

    state     window                 + state query            -> state caption (a paraphrase)
    action    window before + after  + action query           -> action text (a paraphrase)
    outcome   window before          + "what happens if: a?"  -> caption of the state after
    imagined  any static window      + "what happens if: a?"  -> caption of apply_action(state, a)
              (a world-model sample without rendering the after frames: the
              simulator's state is symbolic, so every legal push, removal or
              lamp switch of every static frame is a training example)
    yes/no    window                 + a yes/no question       -> "yes" | "no"
    attribute window                 + a question about one fact -> a short answer
              ("what is on the front left?" -> "a red cube"; "where is the red
              cube?" -> "on the front left"; "which objects ...?"; "how many
              ...?"): colour, shape and cell each get their own target, so the
              predictor learns them apart and can recombine them (the paper's
              many-queries-one-predictor training)
    cell      window                 + "what colour / shape is the object on the front left?"
                                                             -> "purple" | "cylinder" | "nothing"
              one word per fact: every answer a held-out pair (purple x cylinder)
              needs was seen, so ``WorldModel.read_state`` can compose a state
              the state query never saw (vljepa_ros/state_reading.py)

Answers that mean the same thing share a target id, so a paraphrase of the
positive is never used as a negative by the loss.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from ..models.x_encoder import pad_window, window_at
from ..sim.captions import (
    COLOURS,
    COLUMNS,
    ROWS,
    SHAPES,
    _all_actions,
    action_paraphrases,
    action_text,
    apply_action,
    state_caption,
    state_paraphrases,
)
from ..state_reading import CELL_FACTS, NOTHING, cell_question

# The one-word answers of the cell and yes/no questions: at inference each is
# ranked among all of its set, so every batch contrasts with all of them.
CLOSED_ANSWERS = (NOTHING, *COLOURS, *SHAPES, "yes", "no")
from .dataset import Dataset

# Query wordings seen in training; the first of each is what inference uses.
STATE_QUERIES = ("what is on the table?", "describe the scene.", "what is the state of the scene?")
ACTION_QUERIES = ("what action happened?", "what did the robot do?", "which action changed the scene?")
OUTCOME_TEMPLATES = ("what happens if the robot does: {action}?", "what will the scene look like after: {action}?")


def yes_no_questions(state: dict, rng: random.Random) -> tuple[str, str]:
    """One (question, answer) about a frame's state, balanced yes/no."""
    kind = rng.random()
    if kind < 0.35:
        lamp_on = bool(state["lamp_on"])
        if rng.random() < 0.5:
            return "is the lamp on?", "yes" if lamp_on else "no"
        return "is the room dark?", "no" if lamp_on else "yes"
    present = {(o["colour"], o["shape"]) for o in state.get("objects", [])}
    if present and rng.random() < 0.5:
        colour, shape = rng.choice(sorted(present))
    else:
        colour, shape = rng.choice(COLOURS), rng.choice(SHAPES)
    return f"is there a {colour} {shape} on the table?", "yes" if (colour, shape) in present else "no"


_COUNT_WORDS = ("none", "one", "two", "three", "four", "five", "six")


def attribute_questions(state: dict, rng: random.Random) -> tuple[str, str]:
    """One (question, answer) about a single fact of a frame's state."""
    objects = state.get("objects", [])
    at = {(int(o["cell"][0]), int(o["cell"][1])): o for o in objects}
    kind = rng.random()
    if kind < 0.4:  # what is in one cell (occupied cells asked more often)
        col, row = (rng.choice(sorted(at)) if at and rng.random() < 0.6
                    else (rng.randrange(len(COLUMNS)), rng.randrange(len(ROWS))))
        o = at.get((col, row))
        return (f"what is on the {ROWS[row]} {COLUMNS[col]}?",
                f"a {o['colour']} {o['shape']}" if o else "nothing")
    if kind < 0.7:  # where one object is (present ones asked more often)
        present = sorted((o["colour"], o["shape"]) for o in objects)
        if present and rng.random() < 0.75:
            colour, shape = rng.choice(present)
        else:
            colour, shape = rng.choice(COLOURS), rng.choice(SHAPES)
        o = next((o for o in objects if (o["colour"], o["shape"]) == (colour, shape)), None)
        return (f"where is the {colour} {shape}?",
                f"on the {ROWS[int(o['cell'][1])]} {COLUMNS[int(o['cell'][0])]}" if o else "it is not on the table")
    if kind < 0.85:  # which objects, without positions
        names = sorted(f"a {o['colour']} {o['shape']}" for o in objects)
        return "which objects are on the table?", (", ".join(names[:-1]) + " and " + names[-1]
                                                   if len(names) > 1 else (names[0] if names else "nothing"))
    return "how many objects are on the table?", _COUNT_WORDS[min(len(objects), len(_COUNT_WORDS) - 1)]


def cell_questions(state: dict, rng: random.Random, fact: str | None = None) -> tuple[str, str]:
    """One (question, one-word answer): the colour or the shape (``fact``,
    random if None) of what one cell holds; occupied cells are asked about
    half the time."""
    at = {(int(o["cell"][0]), int(o["cell"][1])): o for o in state.get("objects", [])}
    col, row = (rng.choice(sorted(at)) if at and rng.random() < 0.5
                else (rng.randrange(len(COLUMNS)), rng.randrange(len(ROWS))))
    fact = fact or rng.choice(sorted(CELL_FACTS))
    obj = at.get((col, row))
    return cell_question(fact, col, row), obj[fact] if obj else NOTHING


@dataclass
class Batch:
    windows: torch.Tensor            # (B,T,C,g,g) float32
    before: torch.Tensor | None      # (B_action,T,C,g,g): the action samples are the first B_action rows
    queries: list[str]
    targets: list[str]
    target_ids: torch.Tensor         # (B,) equal ids = same meaning
    negatives: list[str]             # the closed answer sets, contrasted with every prediction (InfoNCE)
    negative_ids: torch.Tensor       # (N,)


class SplitTasks:
    """Index of one split: features per episode, frame records, transitions."""

    def __init__(self, dataset: Dataset, features: dict[str, torch.Tensor], window_frames: int,
                 views: dict[str, dict[str, torch.Tensor]] | None = None):
        self.dataset = dataset
        self.features = features
        # fact view ("colour" / "shape", vljepa_ros/fact_views.py) -> episode -> its frames' features:
        # the cell questions of a model with reading_views look at these (``view_window``)
        self.views = {name: dict(feats) for name, feats in (views or {}).items()}
        self._viewed: dict[str, list[tuple[str, int]]] | None = None
        self.T = window_frames
        self.frames = {ep: [f.record for f in dataset.episode_frames(ep)] for ep in dataset.episodes()}
        for ep, recs in self.frames.items():
            if features[ep].shape[0] != len(recs):
                raise ValueError(f"features of episode {ep} do not match its frames")
        self.frame_keys = [(ep, i) for ep, recs in self.frames.items() for i in range(len(recs))]
        # Transitions usable for action/outcome: a static stretch before and after.
        self.transitions = [t for t in dataset.transitions() if t.get("before_frames") and t.get("after_frames")]
        held_out = {tuple(x) for x in dataset.meta.get("held_out_compositions", [])}
        # Actions whose result the text fully determines ("place" does not say where).
        self.imaginable_actions = [a for a in _all_actions() if a["kind"] != "place"
                                   and (a.get("colour"), a.get("shape")) not in held_out]
        self._ids: dict[tuple[str, str], int] = {}

    def merge(self, other: SplitTasks, prefix: str) -> None:
        """Add another source's episodes (e.g. static scene snapshots) under
        ``prefix/`` so the tasks sample from both."""
        if other.T != self.T:
            raise ValueError("sources must use the same window size")
        for ep, recs in other.frames.items():
            key = f"{prefix}/{ep}"
            self.frames[key] = recs
            self.features[key] = other.features[ep]
            self.frame_keys += [(key, i) for i in range(len(recs))]
            for name, feats in other.views.items():
                self.views.setdefault(name, {})[key] = feats[ep]
        self._viewed = None
        self.transitions += [dict(t, episode=f"{prefix}/{t['episode']}") for t in other.transitions]

    # ---- windows ---------------------------------------------------------------
    def window(self, episode: str, end: int) -> torch.Tensor:
        """(T,C,g,g) frames end-T+1..end; at an episode start the first frame
        repeats (``pad_window``, the rule serving uses too)."""
        return window_at(self.features[episode], end, self.T).float()

    def view_window(self, view: str, episode: str, end: int) -> torch.Tensor:
        """(T,C,g,g): frame ``end``'s fact view repeated over the window, what
        ``WorldModel.read_state`` gives a cell question (a reading looks at the
        settled scene of the latest frame)."""
        return pad_window(self.views[view][episode][end:end + 1], self.T).float()

    def view_windows(self, items) -> dict[str, torch.Tensor] | None:
        """fact -> (B,T,C,g,g) view windows of frames ``items`` [(episode, end)]
        (``reading_pass``'s ``views``); None without views."""
        if not self.views:
            return None
        return {name: torch.stack([self.view_window(name, ep, i) for ep, i in items]) for name in self.views}

    def before_end(self, tr: dict) -> int:
        return tr["before_frames"][1]

    def after_end(self, tr: dict) -> int:
        # A full window of settled frames after the change (or as many as there are).
        c, d = tr["after_frames"]
        return min(d, c + self.T - 1)

    def record(self, episode: str, index: int) -> dict:
        return self.frames[episode][index]

    # ---- targets ---------------------------------------------------------------
    def target_id(self, kind: str, canonical: str) -> int:
        return self._ids.setdefault((kind, canonical), len(self._ids))

    # ---- sampling (training) ----------------------------------------------------
    def sample(self, batch_size: int, weights: dict[str, float], rng: random.Random) -> Batch:
        kinds = list(weights)
        counts = {k: int(batch_size * weights[k] / sum(weights.values())) for k in kinds}
        counts[kinds[0]] += batch_size - sum(counts.values())
        if not self.transitions:
            counts["state"] += counts.pop("action", 0) + counts.pop("outcome", 0)
        windows, befores, queries, targets, ids = [], [], [], [], []

        for _ in range(counts.get("action", 0)):  # action rows first (they carry a before window)
            tr = rng.choice(self.transitions)
            ep = tr["episode"]
            c, d = tr["after_frames"]
            after = rng.randint(min(d, c + self.T - 1), min(d, c + self.T - 1 + 8))
            befores.append(self.window(ep, rng.randint(max(tr["before_frames"][0], self.before_end(tr) - 8),
                                                       self.before_end(tr))))
            windows.append(self.window(ep, after))
            queries.append(rng.choice(ACTION_QUERIES))
            targets.append(rng.choice([tr["action"], *tr.get("action_paraphrases", [])]))
            ids.append(self.target_id("action", tr["action"]))
        for _ in range(counts.get("outcome", 0)):
            tr = rng.choice(self.transitions)
            ep = tr["episode"]
            end = rng.randint(max(tr["before_frames"][0], self.before_end(tr) - 8), self.before_end(tr))
            after = self.record(ep, tr["after_frames"][0])
            windows.append(self.window(ep, end))
            action = rng.choice([tr["action"], *tr.get("action_paraphrases", [])])
            queries.append(rng.choice(OUTCOME_TEMPLATES).format(action=action))
            targets.append(rng.choice([after["caption"], *after.get("paraphrases", [])]))
            ids.append(self.target_id("state", after["caption"]))
        for _ in range(counts.get("imagined", 0)):
            while True:
                ep, i = rng.choice(self.frame_keys)
                rec = self.record(ep, i)
                if rec.get("state") and not rec.get("arm_moving"):
                    action = rng.choice(self.imaginable_actions)
                    after = apply_action(rec["state"], action)
                    if after is not None:
                        break
            windows.append(self.window(ep, i))
            text = rng.choice([action_text(action), *action_paraphrases(action, 3, seed=rng.randrange(1 << 30))])
            queries.append(rng.choice(OUTCOME_TEMPLATES).format(action=text))
            caption = state_caption(after)
            targets.append(rng.choice([caption, *state_paraphrases(after, 3, seed=rng.randrange(1 << 30))]))
            ids.append(self.target_id("state", caption))
        for _ in range(counts.get("state", 0)):
            ep, i = rng.choice(self.frame_keys)
            rec = self.record(ep, i)
            windows.append(self.window(ep, i))
            queries.append(rng.choice(STATE_QUERIES))
            targets.append(rng.choice([rec["caption"], *rec.get("paraphrases", [])]))
            ids.append(self.target_id("state", rec["caption"]))
        if self._viewed is None:  # the frames that have each view (once: merge() resets it)
            self._viewed = {name: [k for k in self.frame_keys if k[0] in feats] for name, feats in self.views.items()}
        viewed = self._viewed
        for _ in range(counts.get("cell", 0) if viewed else 0):  # each fact on its own view of a frame
            fact = rng.choice(sorted(CELL_FACTS))
            ep, i = rng.choice(viewed[fact])
            question, answer = cell_questions(self.record(ep, i)["state"], rng, fact)
            windows.append(self.view_window(fact, ep, i))
            queries.append(question)
            targets.append(answer)
            ids.append(self.target_id("answer", answer))
        asked = (("yesno", yes_no_questions), ("attribute", attribute_questions)) + (() if viewed else (("cell", cell_questions),))
        for kind, ask in asked:
            for _ in range(counts.get(kind, 0)):
                ep, i = rng.choice(self.frame_keys)
                question, answer = ask(self.record(ep, i)["state"], rng)
                windows.append(self.window(ep, i))
                queries.append(question)
                targets.append(answer)
                ids.append(self.target_id("answer", answer))
        return Batch(
            windows=torch.stack(windows),
            before=torch.stack(befores) if befores else None,
            queries=queries,
            targets=targets,
            target_ids=torch.tensor(ids),
            negatives=list(CLOSED_ANSWERS),
            negative_ids=torch.tensor([self.target_id("answer", a) for a in CLOSED_ANSWERS]),
        )
