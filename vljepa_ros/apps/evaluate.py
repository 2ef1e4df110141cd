"""`vljepa-eval`: the model-quality metrics of docs/evaluation (shared/design/evaluation.md)
on one split of a dataset, printed as a table and written as JSON.

    vljepa-eval --model vljepa_ros/assets/tabletop --data data/tabletop --split test --out reports/eval.json

Metrics (``<metric>_se``: standard error over episodes, the unit that is drawn independently)
  state_top1         predicted state embedding vs the bank of the split's state captions
  state_top1_bank    the same, ranked over the model's state bank (what perception_node publishes);
                     split by condition: ``_heldout`` frames that show a held-out colour-shape
                     composition, ``_seen`` frames that show none
  action_top1        which of 4 actions (1 true + 3 distractors) linked the window before to the window after
  action_top1_bank   the same, ranked over the model's whole action bank (what perception_node publishes)
  action_top1_bank_read   the same, with the actions that link the state read before to the state read after
                     (state_reading.actions_linking) ranked first: what perception_node publishes
  action_top1_bank_wm<w>  the same with the world model's check added to each action's score: w x the cosine
                     between the outcome predicted for doing it from the before window and the after state
  outcome_top1       which of 4 states follows "what happens if the robot does <action>?"
  retrieval_r1/r5    text -> clip: each static segment's caption retrieves its clip among all clips
  decoder_state_acc  generative decoder text, mapped to the nearest state caption of the split, equals the truth
  decoder_state_acc_bank  the same, mapped to the nearest caption of the model's state bank (deployment)
  decoder_state_parsed    the generative decoder's text, read back as a state (sim/parse.py), IS the true
                     state: no candidate list at all (the strictest of the three)
  state_read         the state read as the nodes read it (WorldModel.read_state: colour and shape per cell
                     and the lamp, composed, then voted with the state query over the nodes' bank) IS the
                     true state (``_heldout`` / ``_seen`` as above): the event text on /semantic_events
  state_read_facts   the same from the facts alone (compose_state, no bank)
  decoder_read_parsed     the generative decoder's text for the reading's embedding, parsed, IS the true state
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

from ..data.tasks import ACTION_QUERIES, OUTCOME_TEMPLATES, STATE_QUERIES, SplitTasks, yes_no_questions
from ..models.y_encoder import PhraseBank
from ..reporting import machine_info, machine_line
from ..sim.captions import action_distractors, outcome_distractors, state_caption
from ..sim.parse import parse_state
from ..state_reading import BankVote, actions_linking, compose_state
from ..world_model import outcome_consistency, read_probabilities, read_states


def _encode(model, texts: list[str], batch: int = 256) -> torch.Tensor:
    return torch.cat([model.encode_text(texts[i:i + batch]) for i in range(0, len(texts), batch)])


def _predict(model, windows: list[torch.Tensor], queries: list[str], befores=None, batch: int = 128) -> torch.Tensor:
    out = []
    for i in range(0, len(windows), batch):
        w = torch.stack(windows[i:i + batch])
        b = None if befores is None else torch.stack(befores[i:i + batch])
        out.append(model.predict(w, queries[i:i + batch], before_window_features=b))
    return torch.cat(out)


def mean_se(hits: list[bool] | torch.Tensor, episodes: list[str]) -> tuple[float, float]:
    """Mean over items and its standard error with episodes as clusters
    (frames of one episode are not independent draws)."""
    h = torch.as_tensor(hits, dtype=torch.float64)
    if len(h) == 0:
        return float("nan"), float("nan")
    per = {}
    for hit, ep in zip(h.tolist(), episodes):
        per.setdefault(ep, []).append(hit)
    n = len(per)
    if n < 2:
        return h.mean().item(), float("nan")
    # ratio-estimator SE: sum_e (sum_e h - m * n_e)^2 / (m_bar^2 * n (n - 1)), m_bar = mean items per episode
    m = h.mean().item()
    resid = torch.tensor([sum(v) - m * len(v) for v in per.values()], dtype=torch.float64)
    n_bar = len(h) / n
    return m, (resid.pow(2).sum().item() / (n * (n - 1))) ** 0.5 / n_bar


def _put(results: dict, key: str, hits, episodes: list[str]) -> None:
    results[key], results[f"{key}_se"] = mean_se(hits, episodes)


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
             seed: int = 0, action_bank: list[str] | None = None, state_bank: list[str] | None = None,
             outcome_weights: tuple[float, ...] = ()) -> dict:
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
    item_eps = [ep for ep, _, _ in items]
    _put(results, "state_top1", top == truth, item_eps)
    held = {tuple(x) for x in tasks.dataset.meta.get("held_out_compositions", [])}
    shows_held = [any((o["colour"], o["shape"]) in held for o in tasks.record(ep, i)["state"].get("objects", []))
                  for ep, i, _ in items]
    results["state_items"] = len(items)
    results["state_split_bank_size"] = len(bank)
    if state_bank:
        node_emb = _encode(model, state_bank)
        node_top = [state_bank[k] for k in (pred @ node_emb.T).argmax(1).tolist()]
        hits = [t == c for t, (_, _, c) in zip(node_top, items)]
        _put(results, "state_top1_bank", hits, item_eps)
        results["state_bank_size"] = len(state_bank)
        in_bank = set(state_bank)
        results["state_truth_in_bank"] = sum(c in in_bank for _, _, c in items) / len(items)
        for name, want in (("heldout", True), ("seen", False)):
            sel = [k for k, f in enumerate(shows_held) if f == want]
            if sel:
                _put(results, f"state_top1_bank_{name}", [hits[k] for k in sel], [item_eps[k] for k in sel])
                results[f"state_items_{name}"] = len(sel)

    # -- the state read (WorldModel.read_state): fact by fact, then the vote of
    # facts and state query over the nodes' bank (BankVote); the facts alone too
    vote = (BankVote(state_bank), PhraseBank(model.y_encoder, state_bank)) if state_bank else None
    windows = [tasks.window(ep, i) for ep, i, _ in items]
    views = [tasks.view_windows([(ep, i) for ep, i, _ in items[k:k + 64]]) for k in range(0, len(items), 64)]
    probs = [p for k in range(0, len(items), 64)
             for p in read_probabilities(model, torch.stack(windows[k:k + 64]), views=views[k // 64])]
    facts_hits = [state_caption(compose_state(p)[0]) == c for p, (_, _, c) in zip(probs, items)]
    _put(results, "state_read_facts", facts_hits, item_eps)
    read = [state_caption(st) for k in range(0, len(items), 64)
            for st, _ in read_states(model, torch.stack(windows[k:k + 64]), vote=vote, views=views[k // 64])]
    read_hits = [r == c for r, (_, _, c) in zip(read, items)]
    _put(results, "state_read", read_hits, item_eps)
    for name, want in (("heldout", True), ("seen", False)):
        sel = [k for k, f in enumerate(shows_held) if f == want]
        if sel:
            _put(results, f"state_read_{name}", [read_hits[k] for k in sel], [item_eps[k] for k in sel])
            _put(results, f"state_read_facts_{name}", [facts_hits[k] for k in sel], [item_eps[k] for k in sel])

    # -- action and outcome, 4-way
    trs = tasks.transitions
    if max_items and len(trs) > max_items:
        trs = rng.sample(trs, max_items)
    if trs:
        before = [tasks.window(t["episode"], tasks.before_end(t)) for t in trs]
        after = [tasks.window(t["episode"], tasks.after_end(t)) for t in trs]
        a_pred = _predict(model, after, [ACTION_QUERIES[0]] * len(trs), befores=before)
        o_pred = _predict(model, before, [OUTCOME_TEMPLATES[0].format(action=t["action"]) for t in trs])
        a_hits, o_hits = [], []
        for k, t in enumerate(trs):
            a_cands = [t["action"], *action_distractors(t["action_struct"], t.get("before_state_struct"), seed=k)]
            o_cands = [t["after_state"], *outcome_distractors(t["before_state_struct"], t["action_struct"],
                                                               t["after_state_struct"], seed=k)]
            a_hits.append(bool((_encode(model, a_cands) @ a_pred[k]).argmax() == 0))
            o_hits.append(bool((_encode(model, o_cands) @ o_pred[k]).argmax() == 0))
        tr_eps = [t["episode"] for t in trs]
        _put(results, "action_top1", a_hits, tr_eps)
        if action_bank:
            a_scores = a_pred @ _encode(model, action_bank).T  # (K, N)
            ranked = a_scores.argmax(1).tolist()
            _put(results, "action_top1_bank", [action_bank[r] == t["action"] for r, t in zip(ranked, trs)], tr_eps)
            results["action_bank_size"] = len(action_bank)
            # + the world model's check: does doing the action from the before window predict the after state?
            after_state = _predict(model, after, [STATE_QUERIES[0]] * len(trs))
            consistency = torch.stack([outcome_consistency(model, b[None], s, action_bank, OUTCOME_TEMPLATES[0])
                                       for b, s in zip(before, after_state)])  # (K, N)
            # + the readings' check: the actions that link the state read before to the state read after rank first
            ends = ([(t["episode"], tasks.before_end(t)) for t in trs]
                    + [(t["episode"], tasks.after_end(t)) for t in trs])
            reads = read_states(model, torch.stack(before + after), vote=vote, views=tasks.view_windows(ends))
            linking = [set(actions_linking(b[0], a[0])) for b, a in zip(reads[:len(trs)], reads[len(trs):])]
            ranked = [max(range(len(action_bank)), key=lambda j: (action_bank[j] in link, float(row[j])))
                      for row, link in zip(a_scores, linking)]
            _put(results, "action_top1_bank_read", [action_bank[r] == t["action"] for r, t in zip(ranked, trs)],
                 tr_eps)
            results["action_read_linked"] = sum(bool(link) for link in linking) / len(trs)
            for w in outcome_weights:
                ranked = (a_scores + w * consistency).argmax(1).tolist()
                _put(results, f"action_top1_bank_wm{w:g}", [action_bank[r] == t["action"]
                                                            for r, t in zip(ranked, trs)], tr_eps)
        _put(results, "outcome_top1", o_hits, tr_eps)
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
    _put(results, "yesno_acc", [answers[int((yn_emb @ p).argmax())] == a for p, (_, a) in zip(yn_pred, qa)],
         [ep for ep, _, _ in yn])

    # -- generative decoder on predicted state embeddings
    if decoder is not None:
        sub = list(range(len(items)))[:: max(1, len(items) // 300)]
        decoded = decoder.decode(pred[sub])
        dec_emb = _encode(model, [d.text for d in decoded])
        nearest = (dec_emb @ bank_emb.T).argmax(1)
        sub_eps = [item_eps[j] for j in sub]
        _put(results, "decoder_state_acc", nearest == truth[sub], sub_eps)
        if state_bank:
            near_bank = [state_bank[k] for k in (dec_emb @ node_emb.T).argmax(1).tolist()]
            _put(results, "decoder_state_acc_bank", [t == items[j][2] for t, j in zip(near_bank, sub)], sub_eps)
        parsed = [parse_state(d.text) for d in decoded]
        _put(results, "decoder_state_parsed",
             [p is not None and state_caption(p) == items[j][2] for p, j in zip(parsed, sub)], sub_eps)
        # the decoder on the readings' embeddings (what decoder_node decodes when perception sends a reading)
        read_dec = decoder.decode(_encode(model, [read[j] for j in sub]))
        _put(results, "decoder_read_parsed",
             [(p := parse_state(d.text)) is not None and state_caption(p) == items[j][2]
              for d, j in zip(read_dec, sub)], sub_eps)
        results["decoder_exact_match"] = sum(d.text == items[j][2] for d, j in zip(decoded, sub)) / len(sub)
        results["decoder_items"] = len(sub)
        results["decoder_examples"] = [
            {"truth": items[j][2], "decoded": d.text} for d, j in list(zip(decoded, sub))[:5]
        ]
    return results


# The targets of issue 10 (enlarged test split, mean), in one place. The text
# target (decoder text -> true state >= 0.88) holds for what the events say:
# the reading (state_read) and the decoder's text (decoder_state_acc_bank).
TARGETS = {"state_top1_bank": 0.92, "state_read": 0.88, "decoder_state_acc_bank": 0.88, "action_top1_bank": 0.80,
           "action_top1_bank_read": 0.80,
           "action_top1": 0.92, "outcome_top1": 0.90, "retrieval_r1": 0.75}
REPORTED = ("state_top1", "state_top1_bank", "state_top1_bank_seen", "state_top1_bank_heldout", "state_read",
            "state_read_seen", "state_read_heldout", "state_read_facts", "decoder_read_parsed", "action_top1",
            "action_top1_bank", "action_top1_bank_read", "outcome_top1", "retrieval_r1", "retrieval_r5",
            "decoder_state_acc", "decoder_state_acc_bank", "decoder_state_parsed", "yesno_acc")


def format_table(results: dict) -> str:
    lines = [f"{'metric':<24} {'value':>7} {'+-se':>6} {'target':>8}"]
    for key in [*REPORTED, *sorted(k for k in results if k.startswith("action_top1_bank_wm") and "_se" not in k)]:
        if key in results:
            target = TARGETS.get(key)
            mark = "" if target is None else ("  ok" if results[key] >= target else "  MISSED")
            se = results.get(f"{key}_se", float("nan"))
            shown = f">= {target:.2f}" if target else ""
            lines.append(f"{key:<24} {results[key]:>7.3f} {se:>6.3f} {shown:>8}{mark}")
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
    parser.add_argument("--outcome-weights", type=float, nargs="*", default=[0.5, 1.0, 2.0],
                        help="weights w of action_top1_bank_wm<w> (action score + w x outcome consistency)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    from ..assets import default_model_path
    from ..checkpoint import load_checkpoint
    from ..data.dataset import Dataset
    from ..data.features import load_fact_view_features, load_features

    torch.set_num_threads(args.threads)
    model_path = args.model or default_model_path()
    ckpt = load_checkpoint(model_path)
    dataset = Dataset(args.data, args.split)
    t0 = time.time()
    features = load_features(dataset, ckpt.model.x_encoder)
    views = load_fact_view_features(dataset, ckpt.model.x_encoder) if ckpt.model.cfg.reading_views else None
    tasks = SplitTasks(dataset, features, ckpt.model.cfg.x_encoder.window_frames, views)
    results = evaluate(ckpt.model, tasks, ckpt.decoder, args.frame_stride, args.max_items, args.seed,
                       action_bank=ckpt.phrase_banks.get("action"), state_bank=ckpt.phrase_banks.get("state"),
                       outcome_weights=tuple(args.outcome_weights))
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
