#!/usr/bin/env python3
"""Print the model card's metric tables from the reports of `make eval`
(reports/eval.json = test, eval_val.json, eval_compositions.json) and the
shipped checkpoint's provenance, so every number in docs/model_card.md has a
command. Optionally a "before" report of the same split for a before/after column:

    python tools/model_card_numbers.py [--before path/to/old_eval.json]
"""
import argparse
import json
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(root))
from vljepa_ros.apps.evaluate import REPORTED, TARGETS  # noqa: E402  (the targets are defined once, there)

ap = argparse.ArgumentParser()
ap.add_argument("--test", default="reports/eval.json")
ap.add_argument("--val", default="reports/eval_val.json")
ap.add_argument("--compositions", default="reports/eval_compositions.json")
ap.add_argument("--before", default=None, help="a report of the previous model on the same test split")
a = ap.parse_args()


def load(path):
    if not path or not (root / path).exists():
        return None
    return json.loads((root / path).read_text())


reports = {"test": load(a.test), "val": load(a.val), "compositions": load(a.compositions)}
before = load(a.before)
test = reports["test"]
m = test["machine"]
print(f"model {test['model_id']}; {m['cpu']}, {m['cores']} cores, {m['date']}")
for name, r in reports.items():
    if r:
        print(f"- {name}: {r['data']}:{r['split']}, {r['split_episodes']} episodes, {r['split_frames']} frames, "
              f"{r['transitions']} transitions, {r['state_items']} state items")
cols = [c for c in ("val", "test", "compositions") if reports[c]]
head = "| metric | " + " | ".join(cols) + (" | test, before |" if before else " |") + " target |"
print(head)
print("|---" * (len(cols) + 2 + bool(before)) + "|")
wm = sorted({k for r in reports.values() if r for k in r if k.startswith("action_top1_bank_wm") and "_se" not in k})
for key in [*REPORTED, *wm]:
    if not any(r and key in r for r in reports.values()):
        continue

    def cell(r, key=key):
        if not r or key not in r:
            return "-"
        se = r.get(f"{key}_se")
        return f"{r[key]:.3f}" + (f" ± {se:.3f}" if isinstance(se, float) and se == se else "")

    t = TARGETS.get(key)
    target = "-" if t is None else f">= {t:.2f}" + (" met" if test.get(key, 0) >= t else " **missed**")
    row = [cell(reports[c]) for c in cols] + ([cell(before)] if before else [])
    print(f"| {key} | " + " | ".join(row) + f" | {target} |")
if "state_truth_in_bank" in test:
    print(f"(the state bank of {test['state_bank_size']} phrases holds the true state of "
          f"{test['state_truth_in_bank']:.3f} of the test items: the ceiling of state_top1_bank)")
config = json.loads((root / "vljepa_ros/assets/tabletop/config.json").read_text())
prov = config["provenance"]
print(f"training: {prov['train_seconds'] / 60:.1f} min in total ({prov['model_seconds'] / 60:.1f} min to the model "
      f"incl. cached features, the rest the generative decoder) on {prov['machine']['cpu']}, "
      f"{prov['machine']['cores']} cores, {prov['machine']['date']}")
for fname in ("model.safetensors", "text_cache.safetensors"):
    f = root / "vljepa_ros/assets/tabletop" / fname
    if f.exists():
        print(f"{fname}: {f.stat().st_size / 1e6:.1f} MB (fp16)")
