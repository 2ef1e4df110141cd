"""`vljepa-eval`: the model-quality metrics of docs/evaluation (shared/design/evaluation.md)
on one split of a dataset, printed as a table and written as JSON.

    vljepa-eval --model vljepa_ros/assets/tabletop --data data/tabletop --split test --out reports/eval.json

Metrics
  state_top1         predicted state embedding vs the bank of the split's state captions
  action_top1        which of 4 actions (1 true + 3 distractors) linked the window before to the window after
  action_top1_bank   the same, ranked over the model's whole action bank (what perception_node publishes)
  outcome_top1       which of 4 states follows "what happens if the robot does <action>?"
  retrieval_r1/r5    text -> clip: each static segment's caption retrieves its clip among all clips
  decoder_state_acc  generative decoder text, mapped to the nearest state caption, equals the truth
  yesno_acc          yes/no questions about the lamp and the objects
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import torch

from .data.tasks import ACTION_QUERIES, OUTCOME_TEMPLATES, STATE_QUERIES, SplitTasks, yes_no_questions
from .reporting import machine_info, machine_line


def _encode(model, texts: list[str], batch: int = 256) -> torch.Tensor:
    return torch.cat([model.encode_text(texts[i:i + batch]) for i in range(0, len(texts), batch)])


def _predict(model, windows: list[torch.Tensor], queries: list[str], befores=None, batch: int = 128) -> torch.Tensor:
    out = []
    for i in range(0, len(windows), batch):
        w = torch.stack(windows[i:i + batch])
        b = None if befores is None else torch.stack(befores[i:i + batch])
        out.append(model.predict(w, queries[i:i + batch], before_window_features=b))
    return torch.cat(out)


def state_items(tasks: SplitTasks, frame_stride: int) -> list[tuple[str, int, str]]:
    """(episode, frame, canonical caption) of clear frames: the arm is not moving."""
    items = []
    for ep, recs in tasks.frames.items():
        for i in range(0, len(recs), frame_stride):
            if not recs[i].get("arm_moving"):
                items.append((ep, i, recs[i]["caption"]))
    return items


@torch.no_grad()
def evaluate(model, tasks: SplitTasks, decoder=None, frame_stride: int = 5, max_items: int | None = None,
             seed: int = 0, action_bank: list[str] | None = None) -> dict:
    from .sim.captions import action_distractors, outcome_distractors

    model.eval()
    rng = random.Random(seed)
    results: dict = {}

    # -- state: bank = every state caption of the split
    bank = sorted({r["caption"] for recs in tasks.frames.values() for r in recs})
    bank_emb = _encode(model, bank)
    items = state_items(tasks, frame_stride)
    if max_items and len(items) > max_items:
        items = rng.sample(items, max_items)
    pred = _predict(model, [tasks.window(ep, i) for ep, i, _ in items], [STATE_QUERIES[0]] * len(items))
    top = (pred @ bank_emb.T).argmax(1)
    truth = torch.tensor([bank.index(c) for _, _, c in items])
    results["state_top1"] = (top == truth).float().mean().item()
    results["state_items"] = len(items)
    results["state_bank_size"] = len(bank)

    # -- action and outcome, 4-way
    trs = tasks.transitions
    if max_items and len(trs) > max_items:
        trs = rng.sample(trs, max_items)
    if trs:
        before = [tasks.window(t["episode"], tasks.before_end(t)) for t in trs]
        after = [tasks.window(t["episode"], tasks.after_end(t)) for t in trs]
        a_pred = _predict(model, after, [ACTION_QUERIES[0]] * len(trs), befores=before)
        o_pred = _predict(model, before, [OUTCOME_TEMPLATES[0].format(action=t["action"]) for t in trs])
        a_hits = o_hits = 0
        for k, t in enumerate(trs):
            a_cands = [t["action"], *action_distractors(t["action_struct"], t.get("before_state_struct"), seed=k)]
            o_cands = [t["after_state"], *outcome_distractors(t["before_state_struct"], t["action_struct"],
                                                               t["after_state_struct"], seed=k)]
            a_hits += int((_encode(model, a_cands) @ a_pred[k]).argmax() == 0)
            o_hits += int((_encode(model, o_cands) @ o_pred[k]).argmax() == 0)
        results["action_top1"] = a_hits / len(trs)
        if action_bank:
            ranked = (a_pred @ _encode(model, action_bank).T).argmax(1).tolist()
            results["action_top1_bank"] = sum(action_bank[r] == t["action"] for r, t in zip(ranked, trs)) / len(trs)
            results["action_bank_size"] = len(action_bank)
        results["outcome_top1"] = o_hits / len(trs)
    results["transitions"] = len(trs)

    # -- text -> clip retrieval over the static segments after each transition (+ episode starts)
    clips = [(t["episode"], tasks.after_end(t), t["after_state"]) for t in tasks.transitions]
    clips += [(ep, min(len(recs) - 1, tasks.T - 1), recs[0]["caption"]) for ep, recs in tasks.frames.items()]
    if max_items and len(clips) > max_items:
        clips = rng.sample(clips, max_items)
    clip_pred = _predict(model, [tasks.window(ep, i) for ep, i, _ in clips], [STATE_QUERIES[0]] * len(clips))
    captions = [c for _, _, c in clips]
    text_emb = _encode(model, captions)
    ranks = (text_emb @ clip_pred.T).argsort(dim=1, descending=True)  # (Q, clips)
    same = torch.tensor([[a == b for b in captions] for a in captions])  # a clip with the same caption is a hit
    hit = torch.gather(same, 1, ranks)
    results["retrieval_r1"] = hit[:, :1].any(1).float().mean().item()
    results["retrieval_r5"] = hit[:, :5].any(1).float().mean().item()
    results["retrieval_clips"] = len(clips)

    # -- yes/no
    yn = rng.sample(items, min(len(items), 300))
    qa = [yes_no_questions(tasks.record(ep, i)["state"], rng) for ep, i, _ in yn]
    yn_pred = _predict(model, [tasks.window(ep, i) for ep, i, _ in yn], [q for q, _ in qa])
    yn_emb = _encode(model, ["yes", "no"])
    answers = ["yes", "no"]
    results["yesno_acc"] = sum(answers[int((yn_emb @ p).argmax())] == a for p, (_, a) in zip(yn_pred, qa)) / max(1, len(qa))

    # -- generative decoder on predicted state embeddings
    if decoder is not None:
        sub = list(range(len(items)))[:: max(1, len(items) // 300)]
        decoded = decoder.decode(pred[sub])
        dec_emb = _encode(model, [d.text for d in decoded])
        nearest = (dec_emb @ bank_emb.T).argmax(1)
        results["decoder_state_acc"] = (nearest == truth[sub]).float().mean().item()
        results["decoder_exact_match"] = sum(d.text == items[j][2] for d, j in zip(decoded, sub)) / len(sub)
        results["decoder_items"] = len(sub)
        results["decoder_examples"] = [{"truth": items[j][2], "decoded": d.text} for d, j in list(zip(decoded, sub))[:5]]
    return results


TARGETS = {"state_top1": 0.90, "action_top1": 0.90, "outcome_top1": 0.80, "retrieval_r1": 0.60,
           "decoder_state_acc": 0.85}


def format_table(results: dict) -> str:
    lines = [f"{'metric':<20} {'value':>8} {'target':>8}"]
    for key in ("state_top1", "action_top1", "action_top1_bank", "outcome_top1", "retrieval_r1", "retrieval_r5",
                "decoder_state_acc", "yesno_acc"):
        if key in results:
            target = TARGETS.get(key)
            mark = "" if target is None else ("  ok" if results[key] >= target else "  MISSED")
            lines.append(f"{key:<20} {results[key]:>8.3f} {('>= %.2f' % target) if target else '':>8}{mark}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vljepa-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--data", default="data/tabletop", help="dataset root")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--out", default="reports/eval.json", help="JSON report path")
    parser.add_argument("--frame-stride", type=int, default=5, help="evaluate every Nth clear frame")
    parser.add_argument("--max-items", type=int, default=None, help="cap per metric (quick runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from .checkpoint import load_checkpoint
    from .data.dataset import Dataset
    from .data.features import load_features
    from .assets import default_model_path

    torch.set_num_threads(args.threads)
    model_path = args.model or default_model_path()
    ckpt = load_checkpoint(model_path)
    dataset = Dataset(args.data, args.split)
    t0 = time.time()
    features = load_features(dataset, ckpt.model.x_encoder)
    tasks = SplitTasks(dataset, features, ckpt.model.cfg.x_encoder.window_frames)
    results = evaluate(ckpt.model, tasks, ckpt.decoder, args.frame_stride, args.max_items, args.seed,
                       action_bank=ckpt.phrase_banks.get("action"))
    report = {
        **results,
        "model_id": ckpt.model_id,
        "model_path": str(model_path),
        "data": args.data,
        "split": args.split,
        "split_frames": len(dataset),
        "split_episodes": len(dataset.episodes()),
        "data_seed": dataset.meta.get("seed"),
        "seed": args.seed,
        "machine": machine_info(),
        "eval_seconds": round(time.time() - t0, 1),
    }
    print(f"vljepa-eval: {ckpt.model_id} on {args.data}:{args.split} "
          f"({len(dataset)} frames, {len(dataset.episodes())} episodes) -- {machine_line(report['machine'])}")
    print(format_table(report))
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
