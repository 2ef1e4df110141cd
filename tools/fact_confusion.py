#!/usr/bin/env python3
"""What an occupied cell is read as: per true colour-shape pair, how often the
reading's two facts (colour and shape, each the most probable answer;
``state_reading.reading_questions``) name each pair. Shows whether a pair the
training never showed is read as a seen one of the same colour (the shape
guessed from the colour) or of the same shape (the colour guessed from the
shape).

    python tools/fact_confusion.py [--model DIR] [--data data/tabletop_val_compositions] [--split test]

Frames: the first ``--frames`` frames of the split with the arm at rest.
"""
import argparse
import collections
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from vljepa_ros.assets import default_model_path  # noqa: E402
from vljepa_ros.checkpoint import load_checkpoint  # noqa: E402
from vljepa_ros.data.dataset import Dataset  # noqa: E402
from vljepa_ros.data.features import load_fact_view_features, load_features  # noqa: E402
from vljepa_ros.data.tasks import SplitTasks  # noqa: E402
from vljepa_ros.reporting import machine_info, machine_line  # noqa: E402
from vljepa_ros.state_reading import CELLS  # noqa: E402
from vljepa_ros.world_model import read_probabilities  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--data", default="data/tabletop_val_compositions")
    ap.add_argument("--split", default="test")
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ckpt = load_checkpoint(a.model or default_model_path())
    model = ckpt.model.eval()
    ds = Dataset(a.data, a.split)
    views = load_fact_view_features(ds, model.x_encoder, progress=False) if model.cfg.reading_views else None
    tasks = SplitTasks(ds, load_features(ds, model.x_encoder, progress=False), model.cfg.x_encoder.window_frames,
                       views)
    items = [(ep, i) for ep, recs in tasks.frames.items() for i, r in enumerate(recs)
             if not r.get("arm_moving")][:a.frames]
    said: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for k in range(0, len(items), 16):
        chunk = items[k:k + 16]
        probs = read_probabilities(model, torch.stack([tasks.window(ep, i) for ep, i in chunk]),
                                   views=tasks.view_windows(chunk))
        for (ep, i), p in zip(chunk, probs):
            at = {(int(o["cell"][0]), int(o["cell"][1])): o for o in tasks.record(ep, i)["state"]["objects"]}
            for c, cell in enumerate(CELLS):
                if (o := at.get(cell)) is not None:
                    colour, shape = (max(p[2 * c + f], key=p[2 * c + f].get) for f in (0, 1))
                    said[f"{o['colour']} {o['shape']}"][f"{colour} {shape}"] += 1
    held = {" ".join(x) for x in ds.meta.get("held_out_compositions", [])}
    print(f"fact_confusion: {ckpt.model_id} on {a.data}:{a.split}, {len(items)} frames -- "
          f"{machine_line(machine_info())}")
    for truth, counts in sorted(said.items(), key=lambda kv: (kv[0] not in held, kv[0])):
        n = sum(counts.values())
        top = ", ".join(f"{s} {c / n:.2f}" for s, c in counts.most_common(4))
        print(f"  {truth:<16}{' (held out)' if truth in held else '':<12} {n:>4} cells: read right "
              f"{counts[truth] / n:.2f}; most read as: {top}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
