#!/usr/bin/env python3
"""How much the state query should weigh in the reading's vote over the state
bank (``state_reading.BankVote``, ``query_weight``): the reading's exact-state
accuracy per weight on val-side sets only (val episodes, the two
unseen-viewpoint val sets and the unseen-composition val set; never test).
Weight 0 is the facts alone.

    python tools/vote_weight.py [--model DIR] [--weights 0 0.5 1 2 4]

Frames: the clear frames of each set (every 5th of the val episodes, as
vljepa-eval scores them; 400 snapshots of each val_views set and of
val_compositions, whose snapshots are generated as a "test" split: every scene
holds a held-out pair).
"""
import argparse
import random
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from vljepa_ros.apps.evaluate import state_items  # noqa: E402
from vljepa_ros.assets import default_model_path  # noqa: E402
from vljepa_ros.checkpoint import load_checkpoint  # noqa: E402
from vljepa_ros.data.dataset import Dataset  # noqa: E402
from vljepa_ros.data.features import load_fact_view_features, load_features  # noqa: E402
from vljepa_ros.data.tasks import SplitTasks  # noqa: E402
from vljepa_ros.models.y_encoder import PhraseBank  # noqa: E402
from vljepa_ros.reporting import machine_info, machine_line  # noqa: E402
from vljepa_ros.sim.captions import state_caption  # noqa: E402
from vljepa_ros.state_reading import BankVote, compose_state  # noqa: E402
from vljepa_ros.world_model import reading_pass  # noqa: E402

SETS = (("data/tabletop", "val", 5, None), ("data/tabletop_val_views", "val", 1, 400),
        ("data/tabletop_val_views_outer", "val", 1, 400), ("data/tabletop_val_compositions", "test", 1, 400))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    ckpt = load_checkpoint(a.model or default_model_path())
    model = ckpt.model.eval()
    bank = ckpt.phrase_banks["state"]
    vote, bank_emb = BankVote(bank), PhraseBank(model.y_encoder, bank).embeddings.numpy()
    t = float(model.temperature.detach())
    print(f"vote_weight: {ckpt.model_id}, {len(bank)} bank states -- {machine_line(machine_info())}")
    print(f"{'set':<32} {'frames':>6} " + " ".join(f"w={w:<5g}" for w in a.weights))
    means = {w: [] for w in a.weights}
    for root, split, stride, cap in SETS:
        ds = Dataset(root, split)
        views = load_fact_view_features(ds, model.x_encoder, progress=False) if model.cfg.reading_views else None
        tasks = SplitTasks(ds, load_features(ds, model.x_encoder, progress=False), model.cfg.x_encoder.window_frames,
                           views)
        items = [(ep, i) for ep, i, _ in state_items(tasks, stride)]
        if cap and len(items) > cap:
            items = random.Random(0).sample(items, cap)
        hits = {w: [] for w in a.weights}
        for k in range(0, len(items), 32):
            chunk = items[k:k + 32]
            probs, query = reading_pass(model, torch.stack([tasks.window(ep, i) for ep, i in chunk]),
                                        state_query=ckpt.queries.get("state") or "what is on the table?",
                                        views=tasks.view_windows(chunk))
            composed = [compose_state(p)[0] for p in probs]
            with torch.no_grad():
                own = model.encode_text([state_caption(st) for st in composed]).numpy()
            for (ep, i), p, q, st, e in zip(chunk, probs, query, composed, own):
                truth = tasks.record(ep, i)["caption"]
                for w in a.weights:
                    chosen = st if w == 0 else vote.choose(p, q, bank_emb, st, e, t, query_weight=w)[0]
                    hits[w].append(state_caption(chosen) == truth)
        print(f"{root + ':' + split:<32} {len(items):>6} "
              + " ".join(f"{sum(h) / len(h):<7.3f}" for h in hits.values()), flush=True)
        for w, h in hits.items():
            means[w].append(sum(h) / len(h))
    print(f"{'mean of the sets':<32} {'':>6} " + " ".join(f"{sum(m) / len(m):<7.3f}" for m in means.values()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
