"""`vljepa-bench`: selective decoding and runtime benchmarks (shared/design/evaluation.md).

    vljepa-bench [--model DIR] [--data data/tabletop] [--out-dir .] [--quick] [--skip-runtime]

Writes ``<out-dir>/reports/bench.json``, ``<out-dir>/docs/benchmarks.md`` (the
hand-written intro above the generated marker is kept) and
``<out-dir>/docs/img/decoding_curve.png``.

1. Quality vs decodes, all policies on the same embedding streams: every frame
   of the held-out test episodes is embedded as perception_node would (cached
   backbone features, the model's window, the state query), the streams are
   cached in ``<data>/cache/streams-<model_id>.npz``. Truth per frame = the
   canonical caption of the state the scene is in (the arm phrase removed).
   A decode's text is mapped to the nearest caption of the split's state bank
   (Y-encoder); frame quality = [the current output names the true state].
2. The generative decoder's cost per call and the decoder CPU that selective
   decoding saves over uniform decoding at equal quality.
3. Runtime through the real nodes in separate OS processes
   (:mod:`vljepa_ros.ros.bench_runtime`; needs ROS 2, imported lazily).
4. The inference backends side by side (torch, onnxruntime, openvino):
   latency at 15 and 30 Hz, per-stage times, peak RSS, the decoder's cost
   (:mod:`vljepa_ros.benchmark.backends`).

The benchmark itself is the ROS-free package :mod:`vljepa_ros.benchmark`;
this module is its command line.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np

from ..benchmark.model_streams import TEXT_MATCHES, build_streams, decoder_cost, model_mapper
from ..benchmark.policies import (
    QUICK_STRIDES,
    QUICK_THRESHOLDS,
    STRIDES,
    THRESHOLDS,
    WARD_FACTORS,
    quality_benchmark,
)
from ..benchmark.report import jsonable, plot_curves, render_markdown, write_markdown


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vljepa-bench", description=__doc__.split("\n\n")[0],
                                     epilog="Writes <out-dir>/reports/bench.json, <out-dir>/docs/benchmarks.md, "
                                            "<out-dir>/docs/img/decoding_curve.png.")
    parser.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    parser.add_argument("--data", default="data/tabletop", help="dataset root (the test split is used)")
    parser.add_argument("--split", default="test", choices=("train", "val", "test"))
    parser.add_argument("--out-dir", default=".", help="root for reports/ and docs/ (default: the current directory)")
    parser.add_argument("--decode-mode", default="generative", choices=("generative", "retrieval"),
                        help="text decoder of the quality benchmark (decoder_node's default: generative)")
    parser.add_argument("--text-match", default="parse", choices=TEXT_MATCHES,
                        help="how a decoded text is scored: parse it back to a state (default, strict) or take the "
                             "nearest caption of the split's states (lenient)")
    parser.add_argument("--episodes", type=int, default=None, help="use the first N episodes of the split")
    parser.add_argument("--quick", action="store_true", help="small run (2 episodes, short sweeps, short runtime runs)")
    parser.add_argument("--skip-runtime", action="store_true", help="skip the ROS runtime part")
    parser.add_argument("--skip-backends", action="store_true", help="skip the side-by-side backends part")
    parser.add_argument("--no-read-state", action="store_true",
                        help="decode the embeddings themselves, not the state read on each decoded frame "
                             "(perception_node's read_state:=false)")
    parser.add_argument("--runtime-budget-s", type=float, default=480.0,
                        help="camera streaming seconds of all runtime runs together; the 30 Hz 224 px long run gets "
                             "what the three short runs leave (default 480: 10,800 frames, ~10 min with start-ups)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the offline parts")
    args = parser.parse_args(argv)

    import torch

    from ..assets import default_model_path
    from ..checkpoint import load_checkpoint
    from ..reporting import machine_info, machine_line

    torch.set_num_threads(args.threads)
    t_start = time.time()
    info = machine_info()
    print(f"vljepa-bench: {machine_line(info)}", flush=True)
    model_path = args.model or str(default_model_path())
    ckpt = load_checkpoint(model_path)
    report: dict = {
        "command": "vljepa-bench " + " ".join(sys.argv[1:] if argv is None else list(argv)),
        "machine": info, "machine_line": machine_line(info), "model_id": ckpt.model_id, "model_path": model_path,
        "data": args.data, "split": args.split, "decode_mode": args.decode_mode, "text_match": args.text_match,
        "quick": args.quick,
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
    from ..data.dataset import Dataset

    report["data_seed"] = Dataset(args.data, args.split).meta.get("seed")

    # ---- 1. quality vs decodes
    t0 = time.time()
    streams, bank, fps = build_streams(ckpt, args.data, args.split, max_episodes=2 if args.quick else args.episodes,
                                       read_state=not args.no_read_state)
    report["fps"] = fps
    report["read_state"] = not args.no_read_state
    report["state_bank"] = bank
    print(f"streams: {len(streams)} episodes, {sum(s.n for s in streams)} frames ({time.time() - t0:.0f} s)",
          flush=True)
    mapper = model_mapper(ckpt, bank, args.decode_mode, match=args.text_match)
    t0 = time.time()
    quality = quality_benchmark(streams, mapper, QUICK_STRIDES if args.quick else STRIDES,
                                QUICK_THRESHOLDS if args.quick else THRESHOLDS, fps=fps,
                                ward_factors=(1.0,) if args.quick else WARD_FACTORS)
    quality["seconds"] = round(time.time() - t0, 1)
    report["quality"] = quality
    print(f"quality: selective {quality['selective_quality']:.3f} with {quality['selective_decodes']} decodes; "
          f"uniform at the same decodes {quality['uniform_quality_same_decodes']:.3f}; decode reduction "
          f"{quality['decode_reduction']:.2f}x"
          f"{' (lower bound)' if quality['decode_reduction_is_lower_bound'] else ''}; "
          f"{quality['decodes_per_transition']:.2f} decodes/transition; events P {quality['event_precision']:.3f} "
          f"R {quality['event_recall']:.3f}", flush=True)

    # ---- 2. decoder cost and CPU saved
    all_emb = np.concatenate([s.embeddings for s in streams])
    cost = decoder_cost(ckpt, all_emb, n=40 if args.quick else 200)
    report["decoder_cost"] = cost
    mode = args.decode_mode if args.decode_mode in cost else next(iter(cost))
    minutes = quality["video_minutes"]
    saved_decodes = quality["uniform_decodes_same_quality"] - quality["selective_decodes"]
    report["decoder_cpu_saved"] = {
        "mode": mode, "ms_per_decode": cost[mode]["median_ms"],
        "uniform_decodes_per_minute": quality["uniform_decodes_same_quality"] / minutes,
        "selective_decodes_per_minute": quality["selective_decodes"] / minutes,
        "decodes_saved_per_minute": saved_decodes / minutes,
        "cpu_ms_saved_per_minute": saved_decodes / minutes * cost[mode]["median_ms"],
        "is_lower_bound": quality["decode_reduction_is_lower_bound"],
    }
    costs = ", ".join(f"{m} {v['median_ms']:.1f} ms" for m, v in cost.items())
    print(f"decoder: {costs} per call; saved "
          f"{report['decoder_cpu_saved']['cpu_ms_saved_per_minute']:.0f} ms CPU per minute of video", flush=True)

    # ---- 3. runtime through the nodes
    if not args.skip_runtime:
        from ..ros.bench_runtime import run_runtime_benchmark

        report["runtime"] = run_runtime_benchmark(
            data_root=args.data, split=args.split, model_path=args.model or "", quick=args.quick,
            budget_s=args.runtime_budget_s, log_dir=os.path.join(args.out_dir, "reports", "bench_runtime"))

    # ---- 4. the inference backends side by side
    if not args.skip_backends:
        from ..benchmark.backends import run_backends

        report["backends"] = run_backends(args.model, frames=90 if args.quick else 225,
                                          rates=(30.0,) if args.quick else (15.0, 30.0),
                                          log=lambda m: print(m, flush=True))

    report["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    report["seconds"] = round(time.time() - t_start, 1)
    json_path = os.path.join(args.out_dir, "reports", "bench.json")
    md_path = os.path.join(args.out_dir, "docs", "benchmarks.md")
    png_path = os.path.join(args.out_dir, "docs", "img", "decoding_curve.png")
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    with open(json_path, "w") as f:
        json.dump(jsonable(report), f, indent=2)
    plot_curves(quality, png_path)
    write_markdown(md_path, render_markdown(report))
    print(f"wrote {json_path}, {md_path}, {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
