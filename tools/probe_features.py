"""Where is the scene information lost? Linear probes and a target-space check.

    python tools/probe_features.py [--model vljepa_ros/assets/tabletop] [--train-scenes 2000] \
        [--json reports/probes.json]

1. Frozen backbone (EfficientNet-Lite0) at 160 and 224 px, read at the final
   (stride-32) and the stride-16 stage, average-pooled to 3x3 and 5x5: a
   linear probe per attribute (logistic regression on the flattened, standardised
   features) is fit on independent training scenes (data/tabletop_scenes +
   data/tabletop_views: one random scene each) and scored on clear frames of
   the val split (unseen episodes, training viewpoints) and of the test split
   (unseen viewpoints, held-out compositions).
2. The same probes on the model's PREDICTED state embedding (what the predictor
   keeps of it).
3. The target space: cosine similarity of Y-encoder embeddings of caption pairs
   that differ in one attribute (colour, shape, cell, lamp) against random
   pairs. If minimal pairs sit as close as identical captions, the target space
   cannot tell the states apart, whatever the predictor does.

Attributes: object count (0-3), per-cell content (empty or one of 15
colour-shape pairs; scored on occupied cells and on all cells), per-cell colour
and shape (occupied cells), the lamp. Prints a Markdown table; writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from vljepa_ros.checkpoint import load_checkpoint  # noqa: E402
from vljepa_ros.data.dataset import Dataset  # noqa: E402
from vljepa_ros.models.backbones import build_backbone  # noqa: E402
from vljepa_ros.models.x_encoder import preprocess_frame, window_at  # noqa: E402
from vljepa_ros.reporting import machine_info, machine_line  # noqa: E402
from vljepa_ros.sim.captions import COLOURS, SHAPES, state_caption  # noqa: E402

CELLS = [(c, r) for r in range(2) for c in range(3)]
COMPS = [(c, s) for c in COLOURS for s in SHAPES]


def labels(state: dict) -> dict:
    at = {(int(o["cell"][0]), int(o["cell"][1])): (o["colour"], o["shape"]) for o in state.get("objects", [])}
    return {
        "count": len(at),
        "lamp": int(bool(state["lamp_on"])),
        "cell": [0 if c not in at else 1 + COMPS.index(at[c]) for c in CELLS],
        "colour": [0 if c not in at else 1 + COLOURS.index(at[c][0]) for c in CELLS],
        "shape": [0 if c not in at else 1 + SHAPES.index(at[c][1]) for c in CELLS],
    }


def pick_frames(root: str, split: str, n: int, rng: random.Random) -> list:
    """(dataset, frame) pairs of clear frames (arm at rest), n drawn at random."""
    ds = Dataset(root, split)
    frames = [f for ep in ds.episodes() for f in ds.episode_frames(ep) if not f.record.get("arm_moving")]
    return [(ds, f) for f in rng.sample(frames, min(n, len(frames)))]


@torch.no_grad()
def backbone_features(items: list, size: int) -> dict[str, np.ndarray]:
    """{"final-g3": (N, C*9), "final-g5", "stride16-g3", "stride16-g5"}: one pass gives both stages."""
    bb = build_backbone("efficientnet_lite0", size, "final")
    n16 = max(i for i, b in enumerate(bb.net._blocks) if b._block_args.output_filters == 112)
    seen = {}
    bb.net._blocks[n16].register_forward_hook(lambda m, i, o: seen.__setitem__("s16", o))
    out: dict[str, list] = {}
    for k in range(0, len(items), 32):
        x = torch.stack([preprocess_frame(ds.image(f), size) for ds, f in items[k:k + 32]])
        maps = {"final": bb(x), "stride16": seen["s16"]}
        for stage, fmap in maps.items():
            for g in (3, 5):
                out.setdefault(f"{stage}-g{g}", []).append(F.adaptive_avg_pool2d(fmap, g).flatten(1).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


@torch.no_grad()
def predicted_features(ckpt, items: list) -> np.ndarray:
    """The model's predicted state embedding of each frame's window (N, D);
    only the frames of those windows go through the backbone."""
    model = ckpt.model.eval()
    T, size = model.cfg.x_encoder.window_frames, model.cfg.x_encoder.image_size
    query = ckpt.queries.get("state") or "what is on the table?"
    out = []
    for ds, f in items:
        frames = ds.episode_frames(f.episode)[max(0, f.index - T + 1): f.index + 1]
        feats = model.encode_frames(torch.stack([preprocess_frame(ds.image(x), size) for x in frames]))
        out.append(model.predict(window_at(feats, len(frames) - 1, T)[None], query)[0].numpy())
    return np.stack(out)


def probe(train_x: np.ndarray, train_y: dict, evals: dict[str, tuple[np.ndarray, dict]]) -> dict:
    """Fit one linear probe per attribute on train, score on each eval set."""
    scaler = StandardScaler().fit(train_x)
    tx = scaler.transform(train_x)
    scores: dict[str, dict] = {name: {} for name in evals}

    def fit(y):
        return LogisticRegression(C=0.05, max_iter=300).fit(tx, y)

    for attr in ("count", "lamp"):
        clf = fit(train_y[attr])
        for name, (x, y) in evals.items():
            scores[name][attr] = float((clf.predict(scaler.transform(x)) == np.asarray(y[attr])).mean())
    for attr in ("cell", "colour", "shape"):
        hits_occ, hits_all = {n: [] for n in evals}, {n: [] for n in evals}
        for c in range(len(CELLS)):
            ytr = np.asarray(train_y[attr])[:, c]
            if len(set(ytr)) < 2:
                continue
            clf = fit(ytr)
            for name, (x, y) in evals.items():
                yt = np.asarray(y[attr])[:, c]
                pred = clf.predict(scaler.transform(x))
                hits_all[name] += (pred == yt).tolist()
                hits_occ[name] += (pred == yt)[yt > 0].tolist()
        for name in evals:
            scores[name][f"{attr}_occupied"] = float(np.mean(hits_occ[name])) if hits_occ[name] else float("nan")
            if attr == "cell":
                scores[name]["cell_all"] = float(np.mean(hits_all[name]))
                scores[name]["cell_all_empty_baseline"] = float((np.asarray(evals[name][1]["cell"]) == 0).mean())
    return scores


def label_table(items: list) -> dict:
    rows = [labels(f.record["state"]) for _, f in items]
    return {k: [r[k] for r in rows] for k in rows[0]}


@torch.no_grad()
def target_space(ckpt, n: int = 300, seed: int = 0) -> dict:
    """Mean cosine of Y-encoder embeddings: caption vs the same state with one attribute changed."""
    rng = random.Random(seed)
    model = ckpt.model.eval()

    def random_state():
        k = rng.randint(1, 3)
        cells = rng.sample(CELLS, k)
        comps = rng.sample(COMPS, k)
        return {"objects": [{"colour": c, "shape": s, "cell": list(cell)} for (c, s), cell in zip(comps, cells)],
                "lamp_on": rng.random() < 0.5}

    def changed(state, what):
        s = json.loads(json.dumps(state))
        o = rng.choice(s["objects"])
        used = {(p["colour"], p["shape"]) for p in s["objects"]}
        if what == "colour":
            options = [c for c in COLOURS if (c, o["shape"]) not in used]
        elif what == "shape":  # empty when the scene holds all three shapes of o's colour
            options = [x for x in SHAPES if (o["colour"], x) not in used]
        elif what == "cell":
            options = [list(c) for c in CELLS if list(c) not in [p["cell"] for p in s["objects"]]]
        else:
            s["lamp_on"] = not s["lamp_on"]
            return s
        if not options:
            return None
        o[{"colour": "colour", "shape": "shape", "cell": "cell"}[what]] = rng.choice(options)
        return s

    out = {}
    base = [random_state() for _ in range(n)]
    a = model.encode_text([state_caption(s) for s in base])
    for what in ("colour", "shape", "cell", "lamp"):
        pairs = [(k, c) for k, c in enumerate(changed(s, what) for s in base) if c is not None]
        b = model.encode_text([state_caption(c) for _, c in pairs])
        out[f"cos_{what}_changed"] = float((a[[k for k, _ in pairs]] * b).sum(1).mean())
    other = model.encode_text([state_caption(random_state()) for _ in range(n)])
    out["cos_random_pair"] = float((a * other).sum(1).mean())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="checkpoint for the predicted-embedding and target-space parts")
    ap.add_argument("--data", default="data/tabletop")
    ap.add_argument("--train-sources", nargs="+", default=["data/tabletop_scenes", "data/tabletop_views"])
    ap.add_argument("--train-scenes", type=int, default=2000)
    ap.add_argument("--eval-frames", type=int, default=500)
    ap.add_argument("--sizes", type=int, nargs="+", default=[160, 224])
    ap.add_argument("--json", default="reports/probes.json")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    rng = random.Random(a.seed)
    t0 = time.time()
    per_source = a.train_scenes // len(a.train_sources)
    train = [it for src in a.train_sources for it in pick_frames(src, "train", per_source, rng)]
    evals = {
        "val": pick_frames(a.data, "val", a.eval_frames, rng),
        "test": pick_frames(a.data, "test", a.eval_frames, rng),
    }
    train_y = label_table(train)
    eval_y = {k: label_table(v) for k, v in evals.items()}
    report: dict = {"machine": machine_info(), "train_scenes": len(train),
                    "eval_frames": {k: len(v) for k, v in evals.items()}, "probes": {}}
    for size in a.sizes:
        tr = backbone_features(train, size)
        ev = {k: backbone_features(v, size) for k, v in evals.items()}
        for key in tr:
            report["probes"][f"backbone {size}px {key}"] = probe(tr[key], train_y,
                                                                  {k: (ev[k][key], eval_y[k]) for k in evals})
            print(f"[probe] backbone {size}px {key} ({time.time() - t0:.0f} s)", flush=True)
    if a.model or os.path.exists("vljepa_ros/assets/tabletop"):
        from vljepa_ros.assets import default_model_path

        ckpt = load_checkpoint(a.model or default_model_path())
        report["model_id"] = ckpt.model_id
        tr = predicted_features(ckpt, train)
        ev = {k: predicted_features(ckpt, v) for k, v in evals.items()}
        report["probes"][f"predicted state embedding ({ckpt.model_id})"] = probe(
            tr, train_y, {k: (ev[k], eval_y[k]) for k in evals})
        report["target_space"] = target_space(ckpt)
    report["seconds"] = round(time.time() - t0, 1)
    cols = ["count", "cell_occupied", "colour_occupied", "shape_occupied", "cell_all", "lamp"]
    print(f"\nLinear probes, {len(train)} training scenes; val / test clear frames -- "
          f"{machine_line(report['machine'])}")
    print("| features | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for name, sc in report["probes"].items():
        print(f"| {name} | " + " | ".join(f"{sc['val'][c]:.2f} / {sc['test'][c]:.2f}" for c in cols) + " |")
    base = next(iter(report["probes"].values()))
    print(f"(cell_all if every cell is called empty: {base['val']['cell_all_empty_baseline']:.2f} / "
          f"{base['test']['cell_all_empty_baseline']:.2f})")
    if "target_space" in report:
        print("target space (" + report["model_id"] + "): " +
              ", ".join(f"{k} {v:.3f}" for k, v in report["target_space"].items()))
    os.makedirs(os.path.dirname(a.json) or ".", exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
