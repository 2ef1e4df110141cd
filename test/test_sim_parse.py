"""parse_state reads every caption and paraphrase the generator writes back to its state, and nothing else."""
import random

import pytest

from vljepa_ros.sim.captions import COLOURS, SHAPES, state_caption, state_paraphrases
from vljepa_ros.sim.parse import parse_state

CELLS = [(c, r) for r in range(2) for c in range(3)]


def _random_state(rng):
    n = rng.randint(0, 3)
    comps = rng.sample([(c, s) for c in COLOURS for s in SHAPES], n)
    state = {"objects": [{"colour": c, "shape": s, "cell": list(cell)}
                         for (c, s), cell in zip(comps, rng.sample(CELLS, n))], "lamp_on": rng.random() < 0.5}
    if n and rng.random() < 0.3:
        state["arm"] = {"kind": "push", "colour": comps[0][0], "shape": comps[0][1], "direction": "left"}
    return state


def test_every_caption_and_paraphrase_parses_to_its_state():
    rng = random.Random(0)
    for k in range(500):
        state = _random_state(rng)
        truth = state_caption(dict(state, arm=None))
        for text in [state_caption(state), *state_paraphrases(state, 4, seed=k)]:
            parsed = parse_state(text)
            assert parsed is not None and state_caption(parsed) == truth, text


@pytest.mark.parametrize("text", [
    "a red cube on the front; the lamp is on",                 # no column
    "a red on the front left; the lamp is on",                 # no shape
    "a red cube on the front left",                            # no lamp
    "the lamp is on",                                          # neither objects nor "empty"
    "the table is empty; a red cube on the front left; the lamp is on",
    "a red cube on the front left and a red cube on the back left; the lamp is on",
    "a red cube on the front left and a blue ball on the front left; the lamp is on",
    "a red cube on the front left; the lamp is on; the lamp is off",
    "",
])
def test_incomplete_or_contradictory_text_is_not_a_state(text):
    assert parse_state(text) is None
