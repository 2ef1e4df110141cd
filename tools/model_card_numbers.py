#!/usr/bin/env python3
"""Print the model card's metric table from reports/eval.json and the shipped
checkpoint's provenance (so every number in docs/model_card.md has a command)."""
import json
import sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]
report = json.loads((root / (sys.argv[1] if len(sys.argv) > 1 else "reports/eval.json")).read_text())
config = json.loads((root / "vljepa_ros/assets/tabletop/config.json").read_text())
prov = config["provenance"]
targets = {"state_top1": 0.90, "action_top1": 0.90, "outcome_top1": 0.80, "retrieval_r1": 0.60,
           "decoder_state_acc": 0.85}
print(f"model {report['model_id']} on {report['data']}:{report['split']} ({report['split_frames']} frames, "
      f"{report['split_episodes']} episodes, {report['transitions']} transitions); eval seed {report['seed']}; "
      f"{report['machine']['cpu']}, {report['machine']['cores']} cores, {report['machine']['date']}")
print("| metric | test | target | val (training's last validation) |")
print("|---|---|---|---|")
val = prov.get("val", {})
for key in ("state_top1", "action_top1", "action_top1_bank", "outcome_top1", "retrieval_r1", "retrieval_r5",
            "decoder_state_acc", "yesno_acc"):
    if key not in report:
        continue
    t = targets.get(key)
    mark = "" if t is None else (" (met)" if report[key] >= t else " (**missed**)")
    target = f">= {t:.2f}" if t else "-"
    val_text = f"{val[key]:.3f}" if key in val else "-"
    print(f"| {key} | {report[key]:.3f}{mark} | {target} | {val_text} |")
print(f"training: {prov['train_seconds'] / 60:.1f} min in total ({prov['model_seconds'] / 60:.1f} min to the model, "
      f"the rest the generative decoder) on {prov['machine']['cpu']}, {prov['machine']['cores']} cores, "
      f"{prov['machine']['date']}")
size = (root / "vljepa_ros/assets/tabletop/model.safetensors").stat().st_size
print(f"checkpoint: model.safetensors {size / 1e6:.1f} MB (fp16, trained parts only)")
