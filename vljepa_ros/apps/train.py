"""`vljepa-train`: train VL-JEPA on a dataset in the vljepa_ros format.

    vljepa-train --config config/train_tabletop.yaml [--resume] [--device auto|cpu|cuda]

Phases
  1. backbone features of every frame, cached on disk (the backbone is frozen)
  2. multi-task InfoNCE training of X-encoder projection + predictor + Y-encoder
     top layers (state, action, outcome, yes/no; see data/tasks.py), with
     periodic validation and resumable checkpoints
  3. training of the generative Y-decoder on the (now fixed) model: every
     training text from its Y-encoder embedding (with noise), plus state
     captions from the predictor's own embeddings of their windows
  4. the final checkpoint: trained parts only, fp16 safetensors + config.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from ..checkpoint import save_checkpoint
from ..config_files import ConfigError, dataclass_from, read_yaml
from ..data.dataset import Dataset
from ..data.features import load_fact_view_features, load_features
from ..data.tasks import ACTION_QUERIES, OUTCOME_TEMPLATES, STATE_QUERIES, SplitTasks
from ..models.vljepa import VLJEPA, VLJEPAConfig
from ..models.y_decoder import GenerativeDecoder, GenerativeDecoderConfig, generative_decoder_loss
from ..reporting import machine_info
from ..sim.captions import _all_actions, action_text, random_state, state_bank, state_caption, state_paraphrases
from .evaluate import evaluate


@dataclass
class TrainConfig:
    name: str = "tabletop"
    data: str = "data/tabletop"
    extra_data: list = field(default_factory=list)  # more dataset roots whose train split joins training
    # roots (of data / extra_data) whose frames also get their fact views (vljepa_ros/fact_views.py):
    # with model.reading_views the cell questions are asked on those views, of these frames only
    fact_view_data: list = field(default_factory=list)
    out: str = "runs/tabletop"              # working dir: resumable state, logs
    export: str | None = None               # also write the final checkpoint here (e.g. the shipped asset)
    seed: int = 0
    device: str = "auto"                    # auto | cpu | cuda
    threads: int = 2
    model: dict = field(default_factory=dict)    # VLJEPAConfig overrides, e.g. {x_encoder: {image_size: 160}}
    steps: int = 3000
    batch_size: int = 96
    lr: float = 3e-4
    weight_decay: float = 0.01
    warmup_steps: int = 150
    task_weights: dict = field(
        default_factory=lambda: {"state": 0.4, "action": 0.2, "outcome": 0.1, "imagined": 0.15, "yesno": 0.15}
    )
    val_every: int = 500
    val_items: int = 300
    save_every: int = 500
    decoder: dict = field(default_factory=dict)  # GenerativeDecoderConfig overrides
    decoder_steps: int = 3000
    decoder_batch_size: int = 128
    decoder_lr: float = 1e-3
    decoder_predicted: int = 0              # state windows whose PREDICTED embedding also trains the decoder
    decoder_paraphrases: int = 2            # paraphrases kept per distinct caption / action (decoder_texts)
    decoder_states: int = 0                 # random states whose captions the decoder also learns (text only)
    state_bank_max_objects: int = 1         # the shipped state bank: every state with at most this many objects

    @classmethod
    def from_yaml(cls, path: str) -> TrainConfig:
        """The config of a YAML file; ConfigError naming the file and key on any problem."""
        return dataclass_from(cls, path, read_yaml(path))


def _merge(base: dict, overrides: dict) -> dict:
    out = dict(base)
    for k, v in overrides.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("vljepa-train: --device cuda but no CUDA device is available")
    return torch.device(name)


def _lr_factor(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def _git_commit() -> str | None:
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True,
                                       stderr=subprocess.DEVNULL, cwd=Path(__file__).parent).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


# ---- resumable training state (no pickle: tensors in safetensors, the rest JSON) ----
def _save_state(path: Path, model, optimizer, step: int, rng: random.Random, history: list) -> None:
    from safetensors.torch import save_file

    path.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.trained_state_dict().items()}
    state = optimizer.state_dict()
    for i, s in state["state"].items():
        for k, v in s.items():
            tensors[f"opt.{i}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    tensors["torch_rng"] = torch.get_rng_state()
    save_file(tensors, str(path / "state.safetensors.tmp"))
    os.replace(path / "state.safetensors.tmp", path / "state.safetensors")
    meta = {"step": step, "python_rng": repr(rng.getstate()), "history": history,
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in state["param_groups"]]}
    (path / "state.json").write_text(json.dumps(meta))


def _load_state(path: Path, model, optimizer, rng: random.Random) -> tuple[int, list]:
    import ast

    from safetensors.torch import load_file

    tensors = load_file(str(path / "state.safetensors"))
    meta = json.loads((path / "state.json").read_text())
    own = dict(model.named_parameters())
    with torch.no_grad():
        for k, v in tensors.items():
            if k.startswith("model."):
                own[k[len("model."):]].copy_(v)
    opt_state = optimizer.state_dict()
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            opt_state["state"].setdefault(int(i), {})[name] = v
    optimizer.load_state_dict(opt_state)
    torch.set_rng_state(tensors["torch_rng"])
    rng.setstate(ast.literal_eval(meta["python_rng"]))
    return int(meta["step"]), list(meta["history"])


def train_ds_frames(tasks) -> list:
    """Frame records of the main dataset's episodes (not the merged extra sources)."""
    return [recs for ep, recs in tasks.frames.items() if "/" not in ep]


# ---- phase 1: cached backbone features -> task indexes ----
def load_tasks(cfg: TrainConfig, model, progress: bool):
    T = model.cfg.x_encoder.window_frames

    viewed_roots = {os.path.normpath(r) for r in cfg.fact_view_data}

    def tasks_of(root: str, split: str) -> SplitTasks:
        ds = Dataset(root, split)
        views = None
        if model.cfg.reading_views and (os.path.normpath(root) in viewed_roots or split == "val"):
            # training frames: the shape view with each frame's own weighting; val reads as the nodes do
            views = load_fact_view_features(ds, model.x_encoder, random_shape=split == "train", progress=progress)
        return SplitTasks(ds, load_features(ds, model.x_encoder, progress=progress), T, views)

    if model.cfg.reading_views and not viewed_roots & {os.path.normpath(r) for r in (cfg.data, *cfg.extra_data)}:
        raise ValueError("model.reading_views needs fact_view_data: the data roots whose frames get fact views")
    train_tasks, val_tasks = tasks_of(cfg.data, "train"), tasks_of(cfg.data, "val")
    for root in cfg.extra_data:
        train_tasks.merge(tasks_of(root, "train"), prefix=Path(root).name)
    return train_tasks, val_tasks


# ---- phase 2: multi-task InfoNCE (the objective is VLJEPA.loss) ----
def train_model(cfg: TrainConfig, model, train_tasks, val_tasks, rng: random.Random, device, resume: bool,
                progress: bool) -> list:

    out = Path(cfg.out)
    optimizer = torch.optim.AdamW(model.param_groups(cfg.lr, cfg.weight_decay))
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    step, history = 0, []
    if resume and (out / "state" / "state.json").exists():
        step, history = _load_state(out / "state", model, optimizer, rng)
        print(f"[train] resumed at step {step}")
    model.train()
    bar = tqdm(range(step, cfg.steps), desc="train", initial=step, total=cfg.steps, disable=not progress)
    running = None
    for step in bar:
        for g, base in zip(optimizer.param_groups, base_lrs):
            g["lr"] = base * _lr_factor(step, cfg)
        b = train_tasks.sample(cfg.batch_size, cfg.task_weights, rng)
        loss = model.loss(b.windows.to(device), b.queries, b.targets, b.target_ids.to(device),
                          None if b.before is None else b.before.to(device), b.negatives, b.negative_ids.to(device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]], 1.0)
        optimizer.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}", temp=f"{model.temperature.item():.3f}")
        last = step + 1 == cfg.steps
        if (step + 1) % cfg.val_every == 0 or last:
            metrics = evaluate(model.eval().cpu(), val_tasks, max_items=cfg.val_items, seed=cfg.seed)
            model.to(device).train()
            history.append({"step": step + 1, "loss": round(running, 4),
                            **{k: round(metrics[k], 4) for k in ("state_top1", "action_top1", "outcome_top1",
                                                                 "retrieval_r1", "yesno_acc") if k in metrics}})
            tqdm.write(f"[val] {history[-1]}")
        if (step + 1) % cfg.save_every == 0 or last:
            _save_state(out / "state", model, optimizer, step + 1, rng, history)
    model.eval().cpu()
    return history


# ---- phase 3: the generative Y-decoder on the fixed model ----
def decoder_texts(cfg: TrainConfig, train_tasks) -> list[str]:
    """The texts the decoder learns to write: each distinct state caption and
    action with at most ``decoder_paraphrases`` of its paraphrases. Every frame
    carries fresh paraphrases (156k distinct texts on the shipped data, for
    6,940 states), and encoding all of them costs more than the whole decoder
    phase while adding wording, not meaning. ``decoder_states`` random states
    of the world's vocabulary add their captions: the decoder is a text model,
    and the words of every state are known whether or not a frame shows it."""
    variants: dict[str, list[str]] = {}
    items = [(r["caption"], r.get("paraphrases", [])) for recs in train_tasks.frames.values() for r in recs]
    items += [(tr["action"], tr.get("action_paraphrases", [])) for tr in train_tasks.transitions]
    rng = random.Random(cfg.seed)
    for _ in range(cfg.decoder_states):  # text only: states no frame shows (3 objects, held-out pairs) decode too
        state = random_state(rng)
        items.append((state_caption(state), state_paraphrases(state, cfg.decoder_paraphrases, seed=cfg.seed)))
    for text, paraphrases in items:
        kept = variants.setdefault(text, [])
        kept += [p for p in paraphrases if p not in kept][:cfg.decoder_paraphrases - len(kept)]
    return sorted({t for text, kept in variants.items() for t in [text, *kept]})


@torch.no_grad()
def decoder_pairs(cfg: TrainConfig, model, train_tasks, rng: random.Random) -> tuple[list[str], torch.Tensor]:
    """(text, conditioning embedding) pairs: every decoder text with its own
    Y-encoder embedding, plus ``decoder_predicted`` state windows with the
    PREDICTOR's embedding, so the decoder also learns to read what the
    predictor really emits (its embeddings sit off the targets)."""
    texts = decoder_texts(cfg, train_tasks)
    emb = [model.encode_text(texts[i:i + 256]) for i in range(0, len(texts), 256)]
    keys = rng.sample(train_tasks.frame_keys, min(cfg.decoder_predicted, len(train_tasks.frame_keys)))
    for i in range(0, len(keys), 256):
        chunk = keys[i:i + 256]
        emb.append(model.predict(torch.stack([train_tasks.window(ep, j) for ep, j in chunk]), STATE_QUERIES[0]))
        texts += [train_tasks.record(ep, j)["caption"] for ep, j in chunk]
    return texts, torch.cat(emb)


def train_decoder(cfg: TrainConfig, model, train_tasks, rng: random.Random, progress: bool):
    texts, cond = decoder_pairs(cfg, model, train_tasks, rng)
    dec_cfg = GenerativeDecoderConfig(**_merge(dataclasses.asdict(GenerativeDecoderConfig(
        embed_dim=model.cfg.embed_dim)), cfg.decoder))
    decoder = GenerativeDecoder.from_texts(dec_cfg, texts, model.tokenizer)
    token_ids = model.tokenizer(texts, padding=True, truncation=True, max_length=dec_cfg.max_len + 2,
                                return_tensors="pt")["input_ids"]
    opt = torch.optim.AdamW(decoder.parameters(), lr=cfg.decoder_lr, weight_decay=0.01)
    decoder.train()
    bar = tqdm(range(cfg.decoder_steps), desc="y-decoder", disable=not progress)
    running = None
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cfg.decoder_lr * 0.5 * (1 + math.cos(math.pi * step / cfg.decoder_steps))
        idx = torch.randint(len(texts), (cfg.decoder_batch_size,))
        loss = generative_decoder_loss(decoder, cond[idx], token_ids[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        running = loss.item() if running is None else 0.95 * running + 0.05 * loss.item()
        bar.set_postfix(loss=f"{running:.3f}")
    return decoder.eval()


# ---- phase 4: the checkpoint (trained parts only, fp16) ----
def default_banks(cfg: TrainConfig, train_tasks, val_tasks) -> dict[str, list[str]]:
    """Phrase banks of the shipped model (a user sets their own as parameters):
    every state with at most ``state_bank_max_objects`` objects, the settled
    states of the train/val episodes, and every legal action of the tabletop world."""
    episode_states = {r["caption"] for recs in [*train_ds_frames(train_tasks), *val_tasks.frames.values()]
                      for r in recs if not r.get("arm_moving")}
    return {"state": sorted(set(state_bank(max_objects=cfg.state_bank_max_objects)) | episode_states),
            "action": sorted({action_text(a) for a in _all_actions()})}


def export(cfg: TrainConfig, model, decoder, train_tasks, val_tasks, provenance: dict) -> str:

    queries = {"state": STATE_QUERIES[0], "action": ACTION_QUERIES[0], "outcome": OUTCOME_TEMPLATES[0]}
    model_id = None
    for target in [Path(cfg.out) / "final"] + ([Path(cfg.export)] if cfg.export else []):
        model_id = save_checkpoint(target, model, name=cfg.name, decoder=decoder, queries=queries,
                                   phrase_banks=default_banks(cfg, train_tasks, val_tasks), provenance=provenance,
                                   dtype="fp16")
        print(f"[train] wrote {target} ({model_id})")
    return model_id


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict:

    t_start = time.time()
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = _device(cfg.device)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    model = VLJEPA(VLJEPAConfig.from_dict(_merge(VLJEPAConfig().to_dict(), cfg.model)))
    print(f"[train] model: {model.parameter_counts()} parameters (trainable / frozen / saved)")

    train_tasks, val_tasks = load_tasks(cfg, model, progress)
    print(f"[train] data: {len(train_tasks.frame_keys)} train frames, {len(train_tasks.transitions)} transitions, "
          f"{len(val_tasks.frame_keys)} val frames ({time.time() - t_start:.0f}s)")
    history = train_model(cfg, model.to(device), train_tasks, val_tasks, rng, device, resume, progress)
    t_model = time.time() - t_start
    decoder = train_decoder(cfg, model, train_tasks, rng, progress)
    val = evaluate(model, val_tasks, decoder, max_items=cfg.val_items, seed=cfg.seed)
    train_ds = train_tasks.dataset  # the main dataset's train split (merge() keeps it)
    provenance = {
        "command": "vljepa-train --config <config>",
        "train_config": dataclasses.asdict(cfg),
        "git_commit": _git_commit(),
        "data": {"root": cfg.data, "meta": train_ds.meta, "train_frames": len(train_ds),
                 "val_frames": len(val_tasks.dataset), "extra_data": cfg.extra_data,
                 "train_frames_total": len(train_tasks.frame_keys)},
        "history": history,
        "val": {k: v for k, v in val.items() if isinstance(v, (int, float))},
        "train_seconds": round(time.time() - t_start, 1),
        "model_seconds": round(t_model, 1),
        "machine": machine_info(),
    }
    model_id = export(cfg, model, decoder, train_tasks, val_tasks, provenance)
    print("[train] validation: " + ", ".join(f"{k}={v:.3f}" for k, v in val.items() if isinstance(v, float)))
    print(f"[train] total {time.time() - t_start:.0f}s")
    return {"model_id": model_id, "val": val, "history": history}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vljepa-train", description="Train VL-JEPA (see module docstring).")
    parser.add_argument("--config", default="config/train_tabletop.yaml", help="YAML training config")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/state if present")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), help="override the config's device")
    parser.add_argument("--steps", type=int, help="override the config's steps (smoke runs)")
    parser.add_argument("--decoder-steps", type=int, help="override decoder_steps")
    parser.add_argument("--data", help="override the dataset root")
    parser.add_argument("--out", help="override the working directory")
    parser.add_argument("--export", help="override the export directory ('' = none)")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig.from_yaml(args.config)
    except ConfigError as e:
        parser.exit(2, f"vljepa-train: {e}\n")
    for key in ("device", "steps", "data", "out", "export"):
        if getattr(args, key) is not None:
            setattr(cfg, key, getattr(args, key) or None)
    if args.decoder_steps is not None:
        cfg.decoder_steps = args.decoder_steps
    train(cfg, resume=args.resume, progress=not args.no_progress)
    return 0


if __name__ == "__main__":
    sys.exit(main())
