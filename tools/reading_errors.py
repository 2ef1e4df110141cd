#!/usr/bin/env python3
"""Where a state reading goes wrong: accuracy of each reading question
(``state_reading.reading_questions``) on one split, by what the cell holds
(empty / a seen colour-shape pair / a held-out one), how often the whole
reading is the true state (the facts alone, ``read_caption``, and as the
nodes read it: voted with the state query over the model's state bank,
``read_states`` with ``BankVote``), how many wrong words name
another object of the same scene (put on the wrong cell), and how well the
generative decoder writes back the caption of a clean state embedding.

    python tools/reading_errors.py [--model DIR] [--data data/tabletop] [--split val] [--frames 100]

Frames: a seeded sample of the split's frames with the arm at rest. The
decoder check: captions of random legal states (``random_state``) through the
Y-encoder and back through the generative decoder, parsed (sim/parse.py).
"""
import argparse
import json
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from vljepa_ros.assets import default_model_path  # noqa: E402
from vljepa_ros.checkpoint import load_checkpoint  # noqa: E402
from vljepa_ros.data.dataset import Dataset  # noqa: E402
from vljepa_ros.data.features import load_fact_view_features, load_features  # noqa: E402
from vljepa_ros.data.tasks import SplitTasks  # noqa: E402
from vljepa_ros.models.y_encoder import PhraseBank  # noqa: E402
from vljepa_ros.reporting import machine_info, machine_line  # noqa: E402
from vljepa_ros.sim.captions import random_state, state_caption  # noqa: E402
from vljepa_ros.sim.parse import parse_state  # noqa: E402
from vljepa_ros.state_reading import CELLS, NOTHING, BankVote, read_caption, reading_questions  # noqa: E402
from vljepa_ros.world_model import read_probabilities, read_states  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default="data/tabletop")
    ap.add_argument("--split", default="val")
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--states", type=int, default=200, help="random states for the decoder check")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ckpt = load_checkpoint(a.model or default_model_path())
    model = ckpt.model.eval()
    ds = Dataset(a.data, a.split)
    views = load_fact_view_features(ds, model.x_encoder, progress=False) if model.cfg.reading_views else None
    tasks = SplitTasks(ds, load_features(ds, model.x_encoder, progress=False), model.cfg.x_encoder.window_frames,
                       views)
    held = {tuple(x) for x in ds.meta.get("held_out_compositions", [])}
    items = [(ep, i) for ep, recs in tasks.frames.items() for i, r in enumerate(recs) if not r.get("arm_moving")]
    items = random.Random(0).sample(items, min(len(items), a.frames))
    questions = reading_questions()
    bank = ckpt.phrase_banks.get("state", [])
    vote = (BankVote(bank), PhraseBank(model.y_encoder, bank)) if bank else None
    hits: dict[str, list[bool]] = {}
    bound_elsewhere: list[bool] = []
    for k in range(0, len(items), 16):
        chunk = items[k:k + 16]
        windows = torch.stack([tasks.window(ep, i) for ep, i in chunk])
        views = tasks.view_windows(chunk)
        probs = read_probabilities(model, windows, views=views)
        voted = read_states(model, windows, vote=vote, views=views) if vote else [None] * len(chunk)
        for (ep, i), p, v in zip(chunk, probs, voted):
            st = tasks.record(ep, i)["state"]
            at = {(int(o["cell"][0]), int(o["cell"][1])): o for o in st["objects"]}
            hits.setdefault("state read exactly (all 13)", []).append(read_caption(p)[0] == state_caption(st))
            if v is not None:
                hits.setdefault("state read, bank vote", []).append(state_caption(v[0]) == state_caption(st))
            for q, ((_, _answers), dist) in enumerate(zip(questions, p)):
                said = max(dist, key=dist.get)
                if q == len(questions) - 1:
                    key, truth = "lamp", "yes" if st["lamp_on"] else "no"
                else:
                    fact = "colour" if q % 2 == 0 else "shape"
                    o = at.get(CELLS[q // 2])
                    truth = o[fact] if o else NOTHING
                    kind = "empty" if o is None else ("held-out" if (o["colour"], o["shape"]) in held else "seen")
                    key = f"{fact}, cell {kind}"
                    if said not in (truth, NOTHING):  # a wrong word: is it another object's (a binding error)?
                        others = {x[fact] for cell, x in at.items() if cell != CELLS[q // 2]}
                        bound_elsewhere.append(said in others)
                hits.setdefault(key, []).append(said == truth)
    print(f"reading_errors: {ckpt.model_id} on {a.data}:{a.split}, {len(items)} frames -- "
          f"{machine_line(machine_info())}")
    for key, v in sorted(hits.items()):
        print(f"  {key:<24} {sum(v) / len(v):.3f}  ({len(v)} answers)")
    if bound_elsewhere:
        print(f"  wrong colour/shape words that name another object of the scene (binding errors): "
              f"{sum(bound_elsewhere)} of {len(bound_elsewhere)} ({sum(bound_elsewhere) / len(bound_elsewhere):.2f})")
    report = {"model_id": ckpt.model_id, "data": a.data, "split": a.split, "frames": len(items),
              "machine": machine_info(), "accuracy": {k: sum(v) / len(v) for k, v in sorted(hits.items())},
              "answers": {k: len(v) for k, v in sorted(hits.items())},
              "binding_errors": [sum(bound_elsewhere), len(bound_elsewhere)]}
    if ckpt.decoder is not None and a.states > 0:
        rng = random.Random(5)
        captions = [state_caption(random_state(rng)) for _ in range(a.states)]
        with torch.no_grad():
            texts = [d.text for d in ckpt.decoder.decode(model.encode_text(captions))]
        ok = [(p := parse_state(t)) is not None and state_caption(p) == c for t, c in zip(texts, captions)]
        print(f"  decoder: a random state's caption -> Y-encoder -> generative decoder -> parsed back: "
              f"{sum(ok) / len(ok):.3f} of {len(ok)}")
        report["decoder_round_trip"] = sum(ok) / len(ok)
    if a.out:
        Path(a.out).write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
