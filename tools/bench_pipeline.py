#!/usr/bin/env python3
"""Per-frame cost of perception_node's pipeline (ROS-free) for one or more checkpoints.

    python tools/bench_pipeline.py [MODEL_DIR ...] [--frames 120] [--threads 1]

Pushes random frames at the model's input size through ``PerceptionPipeline``
(backbone + predictor + state-bank ranking + change tracking, as the node does
per frame) and times one ``action_between`` with and without the world-model
check (``action_outcome_weight``) and one ``read_state`` (the state read fact by
fact and voted with the state query over the bank, 14 queries), which run once per change event. Medians
after 20 warm frames; p95 of the frame total. Compare checkpoints on one
machine in one run: absolute numbers move with the CPU and its load.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install

from vljepa_ros.assets import default_model_path  # noqa: E402
from vljepa_ros.checkpoint import load_checkpoint  # noqa: E402
from vljepa_ros.perception import PerceptionConfig, PerceptionPipeline  # noqa: E402
from vljepa_ros.reporting import machine_info, machine_line  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help="checkpoint directories (default: the shipped model)")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (perception_node's default: 1)")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)  # before machine_line, which reports the thread count
    print(f"bench_pipeline: {machine_line(machine_info())}")
    for path in a.models or [default_model_path()]:
        ckpt = load_checkpoint(path)
        pipe = PerceptionPipeline(ckpt, PerceptionConfig(threads=a.threads))
        pipe.warm_up()
        size = ckpt.model.cfg.x_encoder.image_size
        rng = np.random.default_rng(0)
        frames = [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(8)]
        times = {"backbone": [], "predictor": [], "total": []}
        for i in range(a.frames):
            t0 = time.perf_counter()
            r = pipe.process(frames[i % len(frames)], i / 30.0)
            times["total"].append((time.perf_counter() - t0) * 1e3)
            times["backbone"].append(r.timings_ms["backbone"])
            times["predictor"].append(r.timings_ms["predictor"])
        kept = {k: v[20:] for k, v in times.items()}
        window = pipe.world.window()
        action_ms = {}
        for w in (0.0, 0.5):
            t0 = time.perf_counter()
            pipe.world.action_between(window, window, outcome_weight=w)
            action_ms[w] = (time.perf_counter() - t0) * 1e3
        reading_ms = []
        for _ in range(5):
            t0 = time.perf_counter()
            pipe.world.read_state(window)
            reading_ms.append((time.perf_counter() - t0) * 1e3)
        p95 = sorted(kept["total"])[int(0.95 * (len(kept["total"]) - 1))]
        print(f"{ckpt.model_id}: per frame median backbone {statistics.median(kept['backbone']):.1f} ms, "
              f"predictor + bank {statistics.median(kept['predictor']):.1f} ms, total "
              f"{statistics.median(kept['total']):.1f} ms (p95 {p95:.1f}); per change event: action "
              f"{action_ms[0.0]:.0f} ms, with the world-model check {action_ms[0.5]:.0f} ms "
              f"({len(pipe.world.action_bank)} actions); state reading {statistics.median(reading_ms):.0f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
