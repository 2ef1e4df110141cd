"""Reading a scene state fact by fact (ROS-free, torch-free).

The state query ("what is on the table?") answers with one embedding of the
whole caption. On a colour-shape pair it never saw (purple x cylinder) that
embedding lands on a caption it did see (purple ball): the whole-caption
target was never shown for the new pair. Asked one fact at a time -- "what
colour is the object on the front left?" -> "purple", "what shape ...?" ->
"cylinder" -- every answer is a word the predictor was trained on, so the
state is composed from facts instead of recalled as a whole (the paper's one
predictor, many queries). ``WorldModel.read_state`` asks these questions in one
batched predictor pass and hands the answer probabilities to ``compose_state``.

The facts alone misplace words: most wrong readings put another object's
colour or shape on a cell (tools/reading_errors.py). ``BankVote`` lets the
whole-caption state query vote with the facts over the states of a phrase bank
plus the composed reading (a product of experts); measured on val, it reads
more states exactly than the facts alone (docs/model_card.md, "reading").
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .sim.captions import COLOURS, COLUMNS, ROWS, SHAPES, _all_actions, action_text, apply_action, state_caption
from .sim.parse import parse_state  # the caption grammar's inverse (a bank phrase -> its state)

NOTHING = "nothing"
CELL_FACTS = {"colour": COLOURS, "shape": SHAPES}  # fact -> the words that answer it (besides NOTHING)
CELLS = tuple((col, row) for row in range(len(ROWS)) for col in range(len(COLUMNS)))
LAMP_QUESTION = "is the lamp on?"
MAX_OBJECTS = 3  # the tabletop world holds at most 3 objects (config/sim_world.yaml)


def cell_question(fact: str, col: int, row: int) -> str:
    """The one wording of a cell-fact question (training and reading share it)."""
    return f"what {fact} is the object on the {ROWS[row]} {COLUMNS[col]}?"


def fact_answers(fact: str) -> list[str]:
    return [NOTHING, *CELL_FACTS[fact]]


def reading_questions() -> list[tuple[str, list[str]]]:
    """Every (question, candidate answers) a full reading asks: 6 cells x
    (colour, shape), then the lamp."""
    out = [(cell_question(f, c, r), fact_answers(f)) for c, r in CELLS for f in CELL_FACTS]
    return out + [(LAMP_QUESTION, ["yes", "no"])]


_CELL_QUESTION_FACTS = {cell_question(f, c, r): f for c, r in CELLS for f in CELL_FACTS}


def reading_facts() -> list[str | None]:
    """The fact each of ``reading_questions()`` asks ("colour" / "shape"), None
    for the lamp: which fact view a model with ``reading_views`` answers it on."""
    return [f for _ in CELLS for f in CELL_FACTS] + [None]


def question_fact(question: str) -> str | None:
    """The fact ("colour" / "shape") a question asks when it is one of the
    reading's cell questions (a ``reading_views`` model answers it on that fact
    view, also through ~/ask), else None."""
    return _CELL_QUESTION_FACTS.get(question.strip().lower())


def answer_probabilities(predicted, answer_embeddings, temperature: float) -> list[dict[str, float]]:
    """The predictor's answers to ``reading_questions()`` as distributions over
    their candidates: softmax(cosine / temperature), as ``WorldModel`` ranks.
    predicted (Q,D) and each answer_embeddings[k] (n_k,D): numpy arrays, unit rows."""
    out = []
    for (_, answers), e, a in zip(reading_questions(), predicted, answer_embeddings, strict=True):
        z = np.asarray(a, dtype=np.float64) @ np.asarray(e, dtype=np.float64) / float(temperature)
        p = np.exp(z - z.max())
        out.append(dict(zip(answers, (p / p.sum()).tolist())))
    return out


def compose_state(probabilities: Sequence[Mapping[str, float]], max_objects: int = MAX_OBJECTS
                  ) -> tuple[dict, float]:
    """The most probable consistent state from the answer probabilities of
    ``reading_questions()`` (same order). Per cell the options are "nothing"
    (both facts say nothing) or one colour x shape (log p colour + log p shape);
    a colour-shape pair stands in one cell at most, and at most ``max_objects``
    cells hold one (the least sure ones go first). Returns (state, confidence:
    the product of the chosen options' probabilities)."""
    qs = reading_questions()
    if len(probabilities) != len(qs):
        raise ValueError(f"expected {len(qs)} answer distributions, got {len(probabilities)}")
    log = lambda p: math.log(max(p, 1e-9))  # noqa: E731
    options = []  # per cell: [(log p, (colour, shape) | None)], best first
    for k, _ in enumerate(CELLS):
        pc, ps = probabilities[2 * k], probabilities[2 * k + 1]
        cell = [(log(pc[NOTHING]) + log(ps[NOTHING]), None)]
        cell += [(log(pc[c]) + log(ps[s]), (c, s)) for c in COLOURS for s in SHAPES]
        options.append(sorted(cell, key=lambda o: -o[0]))
    choice = [0] * len(CELLS)  # index into options[cell]
    while True:  # a pair claimed by two cells: the less sure cell takes its next option
        owner: dict[tuple, int] = {}
        clash = None
        for k in sorted(range(len(CELLS)), key=lambda k: -options[k][choice[k]][0]):
            pair = options[k][choice[k]][1]
            if pair is not None and pair in owner:
                clash = k
                break
            if pair is not None:
                owner[pair] = k
        if clash is None:
            break
        choice[clash] += 1
    empty = [next(i for i, o in enumerate(opts) if o[1] is None) for opts in options]
    margin = lambda k: options[k][choice[k]][0] - options[k][empty[k]][0]  # noqa: E731  how sure "not empty" is
    full = sorted((k for k in range(len(CELLS)) if options[k][choice[k]][1] is not None), key=margin, reverse=True)
    for k in full[max_objects:]:  # too many objects: the ones closest to "nothing" are emptied
        choice[k] = empty[k]
    objects, total = [], 0.0
    for k, (col, row) in enumerate(CELLS):
        lp, pair = options[k][choice[k]]
        total += lp
        if pair is not None:
            objects.append({"colour": pair[0], "shape": pair[1], "cell": [col, row]})
    lamp = probabilities[-1]
    lamp_on = lamp["yes"] >= lamp["no"]
    total += log(max(lamp["yes"], lamp["no"]))
    return {"objects": objects, "lamp_on": lamp_on, "arm": None}, math.exp(total)


class FactIndex:
    """The answers each of N states gives to ``reading_questions()``, so the
    reading's log-likelihood of every state of a list is one gather
    (``log_likelihood``): how a reading votes over a phrase bank."""

    def __init__(self, states: Sequence[dict]):
        questions = reading_questions()
        self.width = max(len(a) for _, a in questions)
        rows = []
        for st in states:
            at = {(int(o["cell"][0]), int(o["cell"][1])): o for o in st.get("objects", [])}
            row = []
            for col, r in CELLS:
                o = at.get((col, r))
                row += [fact_answers(f).index(o[f] if o else NOTHING) for f in CELL_FACTS]
            rows.append(row + [0 if st["lamp_on"] else 1])  # LAMP_QUESTION: ["yes", "no"]
        self.answers = np.asarray(rows, dtype=np.int64).reshape(len(states), len(questions))  # (N,13)

    def log_likelihood(self, probabilities: Sequence[Mapping[str, float]]) -> np.ndarray:
        """(N,) sum over the 13 questions of log p(the state's answer)."""
        qs = reading_questions()
        table = np.full((len(qs), self.width), -20.0)
        for k, ((_, answers), p) in enumerate(zip(qs, probabilities, strict=True)):
            table[k, :len(answers)] = np.log(np.maximum([p[a] for a in answers], 1e-9))
        return table[np.arange(len(qs))[None, :], self.answers].sum(1)


# The state query's weight against the facts in the vote (BankVote.choose).
# Chosen on val-side sets only (tools/vote_weight.py, 2026-12-02): the mean
# exact-state accuracy over val episodes and the two unseen-viewpoint val sets
# rises from 0.659 (facts alone, 0) and 0.703 (1) to a plateau at 4-6 (0.753,
# 0.756; 0.738 at 8, 0.682 at 16); 6 is the best of the grid.
QUERY_WEIGHT = 6.0


class BankVote:
    """The state query and the fact reading vote over the states of a bank.

    Each candidate state scores query_weight x cos(state query's prediction,
    its caption's Y-embedding) / temperature + the reading's log-likelihood
    of its facts (``FactIndex``); the composed reading (``compose_state``) is a candidate
    too, so a state that no bank holds can still win. Bank phrases that are no
    complete state description (``parse_state`` says None) take no part: a
    bank of free phrases leaves the facts alone. Numpy only, so every backend
    shares it."""

    def __init__(self, texts: Sequence[str]):
        states = [parse_state(t) for t in texts]
        self.keep = np.asarray([k for k, st in enumerate(states) if st is not None], dtype=np.int64)  # bank rows
        self.states = [states[k] for k in self.keep.tolist()]
        self.index = FactIndex(self.states) if self.states else None

    def choose(self, probabilities: Sequence[Mapping[str, float]], query_embedding, bank_embeddings,
               composed: dict, composed_embedding, temperature: float, query_weight: float = QUERY_WEIGHT
               ) -> tuple[dict, float]:
        """(state, confidence): the best-scoring of the bank's states and the
        composed reading. query_embedding (D,) the state query's prediction;
        bank_embeddings (N,D) the whole bank's (rows ``keep`` are used);
        composed_embedding (D,) the composed caption's; ``query_weight``: the
        state query's weight against the facts' (1: both experts at the
        model's temperature; ``QUERY_WEIGHT``, chosen on val).
        Confidence: the reading's probability of the chosen state's facts."""
        q = np.asarray(query_embedding, dtype=np.float64) * (query_weight / temperature)
        own = float(np.asarray(composed_embedding, dtype=np.float64) @ q)
        own_ll = float(FactIndex([composed]).log_likelihood(probabilities)[0])
        best, best_ll = composed, own_ll
        if self.index is not None:
            ll = self.index.log_likelihood(probabilities)  # (M,)
            scores = np.asarray(bank_embeddings, dtype=np.float64)[self.keep] @ q + ll
            k = int(scores.argmax())
            if scores[k] >= own + own_ll:  # ties: the bank's state (it was written, not composed)
                best, best_ll = self.states[k], float(ll[k])
        return {"objects": [dict(o) for o in best.get("objects", [])], "lamp_on": bool(best["lamp_on"]),
                "arm": None}, math.exp(best_ll)


@functools.lru_cache(maxsize=4)
def bank_vote(texts: tuple[str, ...]) -> BankVote:
    """The ``BankVote`` of a state bank, parsed once per distinct bank (both
    backends' ``read_state`` call this with their current bank)."""
    return BankVote(texts)


def read_caption(probabilities: Sequence[Mapping[str, float]], max_objects: int = MAX_OBJECTS) -> tuple[str, float]:
    state, confidence = compose_state(probabilities, max_objects)
    return state_caption(state), confidence


def actions_linking(before: dict, after: dict) -> list[str]:
    """The action texts whose result from state ``before`` is state ``after``
    (the tabletop world's action grammar, ``apply_action``; "place" does not
    say where, so any cell of ``after`` will do). Empty when no one action
    links them, e.g. when a reading is wrong or two changes merged."""
    target = state_caption(after)
    cells = [o["cell"] for o in after.get("objects", [])]
    out = []
    for action in _all_actions():
        variants = [dict(action, cell=c) for c in cells] if action["kind"] == "place" else [action]
        if any((r := apply_action(before, v)) is not None and state_caption(r) == target for v in variants):
            out.append(action_text(action))
    return out

