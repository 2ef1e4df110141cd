#!/usr/bin/env python3
"""Side-by-side CPU benchmark of the inference backends (torch, onnxruntime,
openvino) on what perception_node and decoder_node run, in one command.

    python tools/bench_backends.py [--model DIR] [--frames 225] [--rates 15,30] [--json out.json]

Each backend runs in its own child process (so one backend's imports do not
count in another's memory), with the node's defaults (1 inference thread):

* perception: the frames of a simulated test episode (the `make demo`
  episode, rendered once at 224 px) are played at each camera rate through
  ``PerceptionPipeline.process`` behind a one-slot mailbox, as
  perception_node runs them: a frame that arrives while the previous one is
  processed waits, and a newer one replaces it (dropped). Latency = camera
  stamp -> embedding ready, p50 / p95; per-stage medians from the pipeline's
  own timings (backbone = preprocess + backbone, predictor = state query +
  ranking, action = change tracking and action estimates);
* decoder: ``EventStream.decode`` (generative, with its confidence
  re-encoding) on the episode's embeddings, per call;
* peak RSS (VmHWM) of each child: model + pipeline, without rclpy (a node
  adds the ROS client libraries on top).

The ONNX backends need an export (``vljepa-export``; looked for next to the
checkpoint, then in the cache).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without install

import numpy as np  # noqa: E402

BACKENDS = ("torch", "onnxruntime", "openvino")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _load(backend: str, model: str | None):
    if backend == "torch":
        from vljepa_ros.checkpoint import load_model

        return load_model(model)
    from vljepa_ros.runtime.onnx_model import load_onnx_checkpoint

    return load_onnx_checkpoint(model, backend, threads=1)


def child_perception(backend: str, model: str | None, frames_file: str, rate: float) -> dict:
    from vljepa_ros.perception import PerceptionConfig, PerceptionPipeline

    data = np.load(frames_file)
    frames = data["frames"]
    t0 = time.perf_counter()
    ck = _load(backend, model)
    pipe = PerceptionPipeline(ck, PerceptionConfig(threads=1))
    pipe.warm_up()
    setup_s = time.perf_counter() - t0
    period = 1.0 / rate
    # One-slot mailbox, as perception_node: the worker takes the newest frame
    # that has arrived; frames that arrived meanwhile and were replaced are dropped.
    start = time.perf_counter()
    latencies, stages, processed, dropped, i = [], [], 0, 0, 0
    n = len(frames)
    while i < n:
        now = time.perf_counter() - start
        arrived = int(now // period)  # frames 0..arrived have arrived
        if arrived < i:
            time.sleep(i * period - now)
            continue
        newest = min(arrived, n - 1)
        dropped += newest - i
        r = pipe.process(frames[newest], newest * period)
        done = time.perf_counter() - start
        latencies.append((done - newest * period) * 1e3)
        stages.append(r.timings_ms)
        processed += 1
        i = newest + 1
    q = np.percentile(latencies, [50, 95])
    return {"backend": backend, "rate_hz": rate, "frames": n, "processed": processed, "dropped": dropped,
            "latency_p50_ms": float(q[0]), "latency_p95_ms": float(q[1]),
            "stages_ms": {k: statistics.median(s[k] for s in stages) for k in stages[0]},
            "setup_s": setup_s, "peak_rss_mb": peak_rss_mb(), "model_id": ck.model_id}


def child_decoder(backend: str, model: str | None, frames_file: str) -> dict:
    from vljepa_ros.semantic_events import EventStream

    embeddings = np.load(frames_file)["embeddings"]
    ck = _load(backend, model)
    dec = EventStream(ck, "generative")
    dec.warm_up()
    times = [dec.decode(e)[1] for e in embeddings]
    return {"backend": backend, "decode_calls": len(times), "decode_p50_ms": statistics.median(times),
            "decode_max_ms": max(times), "peak_rss_mb": peak_rss_mb()}


def _run_child(args: list[str]) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
                          timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--frames", type=int, default=225, help="frames of the episode played per rate")
    ap.add_argument("--rates", default="15,30", help="camera rates (Hz)")
    ap.add_argument("--episode-seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, backend, model, frames_file, *rest = args.child
        model = None if model == "-" else model
        out = (child_perception(backend, model, frames_file, float(rest[0])) if kind == "perception"
               else child_decoder(backend, model, frames_file))
        print(json.dumps(out))
        return 0

    from vljepa_ros.export import render_episode
    from vljepa_ros.runtime import check_backend

    backends = [check_backend(b.strip()) for b in args.backends.split(",") if b.strip()]
    rates = [float(r) for r in args.rates.split(",")]
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    load0 = os.getloadavg()[0]
    print(f"date {date}  cpu {cpu_name()}  cores {os.cpu_count()}  load avg (1 min) {load0:.2f}  "
          f"1 inference thread per process")
    t0 = time.perf_counter()
    frames, _ = render_episode(args.episode_seed, "test", 224, args.frames)
    print(f"episode test seed {args.episode_seed}: {len(frames)} frames at 224 px (rendered in "
          f"{time.perf_counter() - t0:.0f} s)")
    with tempfile.TemporaryDirectory() as tmp:
        ffile = str(Path(tmp) / "frames.npz")
        # embeddings for the decoder benchmark: a few of the stream's, from the torch model
        from vljepa_ros.checkpoint import load_model
        from vljepa_ros.perception import PerceptionPipeline

        pipe = PerceptionPipeline(load_model(args.model))
        embs = [pipe.process(f, i / 15).embedding for i, f in enumerate(frames)]
        del pipe
        np.savez(ffile, frames=np.stack(frames), embeddings=np.stack(embs[:: max(1, len(embs) // 12)][:12]))
        model = args.model or "-"
        results = {"date": date, "cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_start": load0,
                   "perception": [], "decoder": []}
        for rate in rates:
            for b in backends:
                results["perception"].append(_run_child(["perception", b, model, ffile, str(rate)]))
        for b in backends:
            results["decoder"].append(_run_child(["decoder", b, model, ffile]))
    results["loadavg_end"] = os.getloadavg()[0]

    ref = {(r["rate_hz"]): r for r in results["perception"] if r["backend"] == "torch"}
    print(f"\nperception (camera -> embedding), model {results['perception'][0]['model_id']}")
    print("| backend | rate | p50 ms | p95 ms | p95 vs torch | processed / frames | backbone ms | "
          "predictor ms | action ms | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results["perception"]:
        t = ref.get(r["rate_hz"])
        ratio = f"{r['latency_p95_ms'] / t['latency_p95_ms']:.2f}x" if t else "-"
        s = r["stages_ms"]
        print(f"| {r['backend']} | {r['rate_hz']:g} Hz | {r['latency_p50_ms']:.1f} | {r['latency_p95_ms']:.1f} | "
              f"{ratio} | {r['processed']} / {r['frames']} | {s['backbone']:.1f} | {s['predictor']:.1f} | "
              f"{s['action']:.2f} | {r['peak_rss_mb']:.0f} |")
    dref = next((r for r in results["decoder"] if r["backend"] == "torch"), None)
    print("\ndecoder (generative decode + confidence, per call)")
    print("| backend | p50 ms | max ms | p50 vs torch | calls | peak RSS MB |")
    print("|---|---|---|---|---|---|")
    for r in results["decoder"]:
        ratio = f"{r['decode_p50_ms'] / dref['decode_p50_ms']:.2f}x" if dref else "-"
        print(f"| {r['backend']} | {r['decode_p50_ms']:.1f} | {r['decode_max_ms']:.1f} | {ratio} | "
              f"{r['decode_calls']} | {r['peak_rss_mb']:.0f} |")
    print(f"\nload avg (1 min) at end {results['loadavg_end']:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
