#!/usr/bin/env python3
"""Break the state errors of a checkpoint down by attribute and by whether the
scene holds a held-out composition (docs/model_card.md, "Analysis").

    python tools/state_errors.py [--model DIR] [--data data/tabletop] [--split test]
"""
import argparse
import collections
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from vljepa_ros.assets import default_model_path
from vljepa_ros.checkpoint import load_checkpoint
from vljepa_ros.data.dataset import Dataset
from vljepa_ros.data.features import load_features
from vljepa_ros.data.tasks import STATE_QUERIES, SplitTasks


def objects(caption: str) -> list[tuple[str, ...]]:
    head = caption.rsplit("; ", 1)[0]
    return re.findall(r"an? (\w+) (\w+) on the (\w+) (\w+)", head)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(default_model_path()))
    ap.add_argument("--data", default="data/tabletop")
    ap.add_argument("--split", default="test")
    ap.add_argument("--stride", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_checkpoint(args.model).model
    ds = Dataset(args.data, args.split)
    tasks = SplitTasks(ds, load_features(ds, model.x_encoder, progress=False), model.cfg.x_encoder.window_frames)
    held = {tuple(x) for x in ds.meta.get("held_out_compositions", [])}
    items = [(ep, i, r) for ep, recs in tasks.frames.items() for i, r in enumerate(recs)
             if not r["arm_moving"] and i % args.stride == 0]
    bank = sorted({r["caption"] for recs in tasks.frames.values() for r in recs if not r["arm_moving"]})
    with torch.no_grad():
        bank_emb = model.encode_text(bank)
        pred = torch.cat([model.predict(torch.stack([tasks.window(ep, i) for ep, i, _ in items[k:k + 64]]),
                                        STATE_QUERIES[0]) for k in range(0, len(items), 64)])
    top = (pred @ bank_emb.T).argmax(1).tolist()
    c, h = collections.Counter(), collections.Counter()
    for (_ep, _i, r), j in zip(items, top):
        p, t = objects(bank[j]), objects(r["caption"])
        c["frames"] += 1
        c["exact"] += bank[j] == r["caption"]
        c["object count"] += len(p) == len(t)
        c["colours"] += sorted(x[0] for x in p) == sorted(x[0] for x in t)
        c["shapes"] += sorted(x[1] for x in p) == sorted(x[1] for x in t)
        c["cells"] += sorted(x[2:] for x in p) == sorted(x[2:] for x in t)
        c["lamp"] += bank[j].rsplit("; ", 1)[-1] == r["caption"].rsplit("; ", 1)[-1]
        has = any((o["colour"], o["shape"]) in held for o in r["state"]["objects"])
        h[has, "n"] += 1
        h[has, "ok"] += bank[j] == r["caption"]
    print(f"{args.split}: {c['frames']} clear frames (every {args.stride}th), bank of {len(bank)} states")
    for key in ("exact", "object count", "colours", "shapes", "cells", "lamp"):
        print(f"  {key:<13} {c[key] / c['frames']:.3f}")
    for has in (True, False):
        label = "with a held-out composition" if has else "without a held-out composition"
        print(f"  {label:<32} {h[has, 'ok']} / {h[has, 'n']} = {h[has, 'ok'] / max(1, h[has, 'n']):.3f}")


if __name__ == "__main__":
    main()
