"""Reading a state fact by fact: the composition rule and the questions that train it."""

import random

import numpy as np
import pytest

from vljepa_ros.data.tasks import cell_questions
from vljepa_ros.sim.captions import COLOURS, SHAPES, random_state, state_caption
from vljepa_ros.state_reading import (
    CELLS,
    LAMP_QUESTION,
    NOTHING,
    BankVote,
    actions_linking,
    cell_question,
    compose_state,
    fact_answers,
    read_caption,
    reading_questions,
)


def _answers(cells: dict, lamp_on: bool = True, sure: float = 0.9) -> list[dict]:
    """Answer distributions: ``cells`` maps (col,row) -> (colour, shape); every
    other cell says "nothing"; each chosen answer gets ``sure``."""
    out = []
    for cell in CELLS:
        for k, fact in enumerate(("colour", "shape")):
            answers = fact_answers(fact)
            want = cells[cell][k] if cell in cells else NOTHING
            rest = (1 - sure) / (len(answers) - 1)
            out.append({a: sure if a == want else rest for a in answers})
    out.append({"yes": 0.8 if lamp_on else 0.2, "no": 0.2 if lamp_on else 0.8})
    return out


def test_questions_cover_every_cell_fact_and_the_lamp():
    qs = reading_questions()
    assert len(qs) == 2 * len(CELLS) + 1 and qs[-1] == (LAMP_QUESTION, ["yes", "no"])
    assert qs[0] == ("what colour is the object on the front left?", [NOTHING, *COLOURS])
    assert qs[1] == ("what shape is the object on the front left?", [NOTHING, *SHAPES])
    assert len({q for q, _ in qs}) == len(qs)


def test_compose_reads_a_pair_no_state_query_saw():
    # a held-out composition is just two known words on one cell
    state, confidence = compose_state(_answers({(0, 0): ("purple", "cylinder"), (2, 1): ("yellow", "ball")},
                                               lamp_on=False))
    assert state_caption(state) == ("a purple cylinder on the front left and a yellow ball on the back right; "
                                    "the lamp is off")
    assert 0.0 < confidence < 1.0


def test_compose_gives_a_pair_to_one_cell_only():
    answers = _answers({(0, 0): ("red", "cube"), (1, 0): ("red", "cube")})
    answers[2]["red"], answers[2]["blue"] = 0.55, 0.35  # front center is less sure about its colour
    state, _ = compose_state(answers)
    assert sorted((o["colour"], o["shape"], tuple(o["cell"])) for o in state["objects"]) == [
        ("blue", "cube", (1, 0)), ("red", "cube", (0, 0))]


def test_compose_keeps_at_most_max_objects_dropping_the_least_sure():
    cells = {(0, 0): ("red", "cube"), (1, 0): ("green", "ball"), (2, 0): ("blue", "cylinder"), (0, 1): ("red", "ball")}
    answers = _answers(cells)
    answers[6] = {a: (0.4 if a == "red" else 0.35 if a == NOTHING else 0.25 / 4) for a in answers[6]}  # (0,1) unsure
    state, _ = compose_state(answers, max_objects=3)
    assert sorted(tuple(o["cell"]) for o in state["objects"]) == [(0, 0), (1, 0), (2, 0)]


def test_compose_rejects_a_wrong_number_of_answers():
    with pytest.raises(ValueError, match="13"):
        compose_state(_answers({})[:-1])


def test_read_caption_round_trips_random_states():
    rng = random.Random(0)
    for _ in range(50):
        truth = random_state(rng)
        cells = {tuple(o["cell"]): (o["colour"], o["shape"]) for o in truth["objects"]}
        caption, _ = read_caption(_answers(cells, truth["lamp_on"]))
        assert caption == state_caption(truth)


def test_cell_questions_answer_one_word_from_the_state():
    state = {"objects": [{"colour": "purple", "shape": "cube", "cell": [1, 1]}], "lamp_on": True}
    seen = set()
    for k in range(200):
        q, a = cell_questions(state, random.Random(k))
        seen.add((q, a))
        fact = "colour" if " colour " in q else "shape"
        assert a in fact_answers(fact)
        if q == cell_question(fact, 1, 1):
            assert a == {"colour": "purple", "shape": "cube"}[fact]
        else:
            assert a == NOTHING
    assert (cell_question("colour", 1, 1), "purple") in seen and (cell_question("shape", 1, 1), "cube") in seen
    assert any(a == NOTHING for _, a in seen)


def test_random_state_is_legal():
    rng = random.Random(1)
    for _ in range(200):
        s = random_state(rng)
        pairs = [(o["colour"], o["shape"]) for o in s["objects"]]
        cells = [tuple(o["cell"]) for o in s["objects"]]
        assert len(pairs) <= 3 and len(set(pairs)) == len(pairs) and len(set(cells)) == len(cells)


def test_actions_linking_two_read_states():
    cube = {"colour": "red", "shape": "cube", "cell": [0, 0]}
    before = {"objects": [cube], "lamp_on": True}
    assert actions_linking(before, {"objects": [dict(cube, cell=[1, 0])], "lamp_on": True}) == [
        "push the red cube to the right"]
    assert actions_linking(before, {"objects": [cube], "lamp_on": False}) == ["turn the lamp off"]
    assert actions_linking(before, {"objects": [], "lamp_on": True}) == ["remove the red cube"]
    placed = {"colour": "purple", "shape": "cylinder", "cell": [2, 1]}
    assert actions_linking(before, {"objects": [cube, placed], "lamp_on": True}) == ["place a purple cylinder"]
    assert actions_linking(before, {"objects": [], "lamp_on": False}) == []  # two changes: no one action
    assert actions_linking(before, before) == []


# ---- the vote of facts and state query over a bank (BankVote) ----------------

def _unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def _vote_case():
    """Two states of a bank and a composed reading that swaps their colours (a
    binding error): the facts lean to the swap, only a little."""
    truth = {"objects": [{"colour": "red", "shape": "cube", "cell": [0, 0]},
                         {"colour": "blue", "shape": "ball", "cell": [2, 1]}], "lamp_on": True, "arm": None}
    other = {"objects": [{"colour": "green", "shape": "cylinder", "cell": [1, 0]}], "lamp_on": False, "arm": None}
    swapped = {(0, 0): ("blue", "cube"), (2, 1): ("red", "ball")}
    probs = _answers(swapped, sure=0.5)
    for k, cell in enumerate(CELLS):  # the true colours are close runners-up
        if cell in swapped:
            probs[2 * k]["red" if cell == (0, 0) else "blue"] = 0.4
    bank = [state_caption(truth), state_caption(other), "a robot arm at rest"]  # the last one is no state
    rng = np.random.default_rng(0)
    bank_emb = np.stack([_unit(rng.normal(size=16)) for _ in bank])
    return truth, probs, bank, bank_emb


def test_vote_lets_the_state_query_fix_a_binding_error():
    truth, probs, bank, bank_emb = _vote_case()
    composed, _ = compose_state(probs)
    assert state_caption(composed) != state_caption(truth)  # the facts alone misread it
    vote = BankVote(bank)
    assert vote.keep.tolist() == [0, 1]  # a phrase that is no state description takes no part
    query = bank_emb[0]  # the state query points at the true caption
    composed_emb = _unit(bank_emb[0] + 3 * bank_emb[1])  # the composed caption is far from it
    state, confidence = vote.choose(probs, query, bank_emb, composed, composed_emb, temperature=0.05)
    assert state_caption(state) == state_caption(truth)
    assert 0 < confidence < compose_state(probs)[1]  # the facts' probability of the chosen (not their best) state
    alone, _ = vote.choose(probs, query, bank_emb, composed, composed_emb, temperature=0.05, query_weight=0.0)
    assert alone == composed  # weight 0: the facts alone


def test_vote_keeps_a_composed_state_that_no_bank_holds():
    truth, probs, bank, bank_emb = _vote_case()
    composed, composed_conf = compose_state(probs)
    query = _unit(bank_emb[0] + bank_emb[1])  # the state query is unsure between the bank's states ...
    composed_emb = query  # ... and closest to the composed caption
    state, confidence = BankVote(bank).choose(probs, query, bank_emb, composed, composed_emb, temperature=0.05)
    assert state_caption(state) == state_caption(composed) and confidence == pytest.approx(composed_conf)


def test_vote_over_a_bank_of_free_phrases_is_the_facts_alone():
    _, probs, _, _ = _vote_case()
    composed, conf = compose_state(probs)
    bank = ["something happened", "a robot arm at rest"]
    vote = BankVote(bank)
    assert vote.index is None
    state, confidence = vote.choose(probs, _unit(np.ones(16)), np.eye(2, 16), composed, _unit(np.ones(16)), 0.05)
    assert state == composed and confidence == pytest.approx(conf)
