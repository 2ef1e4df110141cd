"""The inference backends side by side (torch, onnxruntime, openvino) on what
perception_node and decoder_node run; part 4 of ``vljepa-bench`` (``make
bench``), and on its own:

    python -m vljepa_ros.benchmark.backends [--model DIR] [--frames 225] [--rates 15,30] [--json out.json]

Each backend runs in its own child process (so one backend's imports do not
count in another's memory), with the node's defaults (1 inference thread):

* perception: the frames of a simulated test episode (the `make demo`
  episode, rendered once at 224 px) are played at each camera rate through
  ``PerceptionPipeline.process`` behind a one-slot mailbox, as
  perception_node runs them: a frame that arrives while the previous one is
  processed waits, and a newer one replaces it (dropped). Latency = camera
  stamp -> embedding ready, p50 / p95; per-stage medians from the pipeline's
  own timings (backbone = preprocess + backbone, predictor = state query +
  ranking, action = change tracking, state readings and action estimates);
* decoder: ``EventStream.decode`` (generative, with its confidence
  re-encoding) on the episode's embeddings, per call;
* peak RSS (VmHWM) of each child: model + pipeline, without rclpy (a node
  adds the ROS client libraries on top).

The ONNX backends need an export (``vljepa-export``; looked for next to the
checkpoint, then in the cache, and made there if there is none); a backend
whose engine is not installed is reported as skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ..reporting import cpu_model, proc_status_kb
from ..runtime import BACKENDS, load_backend


def peak_rss_mb() -> float:
    kb = proc_status_kb().get("VmHWM")
    return kb / 1024 if kb is not None else float("nan")


def _load(backend: str, model: str | None):
    return load_backend(backend, model, threads=1, auto_export=False)  # the node's loader; the parent exported


def child_perception(backend: str, model: str | None, frames_file: str, rate: float) -> dict:
    from ..perception import PerceptionConfig, PerceptionPipeline

    frames = np.load(frames_file)["frames"]
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
    from ..semantic_events import EventStream

    embeddings = np.load(frames_file)["embeddings"]
    ck = _load(backend, model)
    dec = EventStream(ck, "generative")
    dec.warm_up()
    times = [dec.decode(e)[1] for e in embeddings]
    return {"backend": backend, "decode_calls": len(times), "decode_p50_ms": statistics.median(times),
            "decode_max_ms": max(times), "peak_rss_mb": peak_rss_mb()}


def _run_child(args: list[str]) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    proc = subprocess.run([sys.executable, "-m", __name__, "--child", *args], capture_output=True, text=True,
                          env=env, timeout=1200)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _available(backend: str, model: str | None, log=print) -> str | None:
    """Why ``backend`` cannot run here (its engine is not installed, the export
    fails), or None; an ONNX backend's export is made first if there is none,
    as the nodes do on first use."""
    if backend == "torch":
        return None
    import importlib.util

    from ..assets import default_model_path
    from ..runtime import BackendError
    from ..runtime.onnx_model import ensure_export, read_checkpoint_config

    if importlib.util.find_spec(backend) is None:
        return f"the Python package {backend!r} is not installed"
    d = Path(model) if model else default_model_path()
    try:
        ensure_export(d, read_checkpoint_config(d)[1], log=log)
    except BackendError as e:
        return str(e)
    return None


def run_backends(model: str | None = None, backends=BACKENDS, frames: int = 225, rates=(15.0, 30.0),
                 episode_seed: int = 7, log=print) -> dict:
    """Every backend at every camera rate, and its decoder: the results dict."""
    from ..checkpoint import load_model
    from ..export import render_episode
    from ..perception import PerceptionPipeline

    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    load0 = os.getloadavg()[0]
    log(f"backends: {date}, {cpu_model()}, {os.cpu_count()} cores, load avg (1 min) {load0:.2f}, "
        "1 inference thread per process")
    skipped = {b: why for b in backends if (why := _available(b, model, log))}
    for b, why in skipped.items():
        log(f"backends: {b} skipped: {why}")
    run = [b for b in backends if b not in skipped]
    t0 = time.perf_counter()
    rendered, _ = render_episode(episode_seed, "test", 224, frames)
    log(f"backends: test episode {episode_seed}, {len(rendered)} frames at 224 px "
        f"(rendered in {time.perf_counter() - t0:.0f} s)")
    results = {"date": date, "cpu": cpu_model(), "cores": os.cpu_count(), "loadavg_start": load0,
               "episode_seed": episode_seed, "frames": len(rendered), "skipped": skipped,
               "perception": [], "decoder": []}
    with tempfile.TemporaryDirectory() as tmp:
        ffile = str(Path(tmp) / "frames.npz")
        # embeddings for the decoder's cost: twelve of the stream's, from the torch model
        pipe = PerceptionPipeline(load_model(model))
        embs = [pipe.process(f, i / 15).embedding for i, f in enumerate(rendered)]
        del pipe
        np.savez(ffile, frames=np.stack(rendered), embeddings=np.stack(embs[:: max(1, len(embs) // 12)][:12]))
        arg = model or "-"

        def child(args: list[str]) -> dict | None:
            try:
                return _run_child(args)
            except (RuntimeError, subprocess.TimeoutExpired) as e:  # one backend failing keeps the others
                skipped[f"{args[1]} ({args[0]})"] = f"failed: {str(e).strip().splitlines()[-1][:300]}"
                log(f"backends: {args[1]} {args[0]} failed: {e}")
                return None

        for rate in rates:
            for b in run:
                if (r := child(["perception", b, arg, ffile, str(rate)])) is not None:
                    log(f"backends: {b} {rate:g} Hz: p50 {r['latency_p50_ms']:.1f} ms, p95 "
                        f"{r['latency_p95_ms']:.1f} ms, {r['processed']}/{r['frames']} processed, peak RSS "
                        f"{r['peak_rss_mb']:.0f} MB")
                    results["perception"].append(r)
        for b in run:
            if (r := child(["decoder", b, arg, ffile])) is not None:
                results["decoder"].append(r)
    results["loadavg_end"] = os.getloadavg()[0]
    return results


def markdown(results: dict) -> list[str]:
    """The two tables (perception per backend and rate, decoder per backend), ratios to torch."""
    if not results.get("perception"):
        return ["No backend ran: " + "; ".join(f"{b}: {w}" for b, w in results.get("skipped", {}).items()), ""]
    ref = {r["rate_hz"]: r for r in results["perception"] if r["backend"] == "torch"}
    lines = [f"{results['date']}, {results['cpu']}, {results['cores']} cores, load average (1 min) "
             f"{results['loadavg_start']:.2f} at the start and {results['loadavg_end']:.2f} at the end; model "
             f"`{results['perception'][0]['model_id']}`; the test episode {results['episode_seed']}'s first "
             f"{results['frames']} frames (224 px) played at the camera rate through `PerceptionPipeline.process` "
             "behind a one-slot mailbox, each backend in its own process, 1 inference thread; latency = camera "
             "stamp -> embedding; peak RSS = VmHWM of that process (model + pipeline, no rclpy).", "",
             "| backend | rate | p50 ms | p95 ms | p95 vs torch | processed / frames | backbone ms | "
             "predictor ms | action ms | peak RSS MB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results["perception"]:
        t = ref.get(r["rate_hz"])
        ratio = f"{r['latency_p95_ms'] / t['latency_p95_ms']:.2f}x" if t else "-"
        s = r["stages_ms"]
        lines.append(f"| {r['backend']} | {r['rate_hz']:g} Hz | {r['latency_p50_ms']:.1f} | "
                     f"{r['latency_p95_ms']:.1f} | {ratio} | {r['processed']} / {r['frames']} | "
                     f"{s['backbone']:.1f} | {s['predictor']:.1f} | {s['action']:.2f} | {r['peak_rss_mb']:.0f} |")
    dref = next((r for r in results["decoder"] if r["backend"] == "torch"), None)
    lines += ["", "Decoder: `EventStream.decode` (generative + its confidence re-encoding), per call:", "",
              "| backend | p50 ms | max ms | p50 vs torch | calls | peak RSS MB |", "|---|---|---|---|---|---|"]
    for r in results["decoder"]:
        ratio = f"{r['decode_p50_ms'] / dref['decode_p50_ms']:.2f}x" if dref else "-"
        lines.append(f"| {r['backend']} | {r['decode_p50_ms']:.1f} | {r['decode_max_ms']:.1f} | {ratio} | "
                     f"{r['decode_calls']} | {r['peak_rss_mb']:.0f} |")
    for b, why in results.get("skipped", {}).items():
        lines.append(f"\n{b}: skipped ({why}).")
    return lines + [""]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vljepa_ros.benchmark.backends", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--backends", default=",".join(BACKENDS))
    ap.add_argument("--frames", type=int, default=225, help="frames of the episode played per rate")
    ap.add_argument("--rates", default="15,30", help="camera rates (Hz)")
    ap.add_argument("--episode-seed", type=int, default=7)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, backend, model, frames_file, *rest = args.child
        model = None if model == "-" else model
        out = (child_perception(backend, model, frames_file, float(rest[0])) if kind == "perception"
               else child_decoder(backend, model, frames_file))
        print(json.dumps(out))
        return 0
    from ..runtime import check_backend

    results = run_backends(args.model, [check_backend(b.strip()) for b in args.backends.split(",") if b.strip()],
                           args.frames, [float(r) for r in args.rates.split(",")], args.episode_seed)
    print("\n".join(markdown(results)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
