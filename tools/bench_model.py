#!/usr/bin/env python3
"""Per-stage CPU latency and parameter counts of the VL-JEPA model core.

    python tools/bench_model.py [--repeats 50] [--json out.json] [--omp-passive]

--omp-passive sets OMP_WAIT_POLICY=PASSIVE before torch starts. On a machine
shared with other busy processes, OpenMP threads that spin-wait can make a
2-thread run 10-100x slower; the header prints the policy and load average so
numbers from a loaded machine are recognisable.

Untrained weights (latency does not depend on training, except the generative
decoder, which here always runs to max_len: an upper bound). Medians over
``--repeats`` runs after warm-up, torch.set_num_threads(2) as on the robot.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without install
if "--omp-passive" in sys.argv:  # must be set before torch (and its OpenMP runtime) loads
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import numpy as np
import torch

from vljepa_ros.checkpoint import WEIGHTS_FILE, save_checkpoint
from vljepa_ros.models import (
    VLJEPA,
    GenerativeDecoder,
    GenerativeDecoderConfig,
    PhraseBank,
    RetrievalDecoder,
    VLJEPAConfig,
    XEncoderConfig,
    preprocess_frame,
)
from vljepa_ros.world_model import WorldModel

COLOURS = ["red", "green", "blue", "yellow"]
SHAPES = ["cube", "ball", "cylinder"]
STATE_BANK = [f"a {c} {s} is on the table and the lamp is {lamp}"
              for c in COLOURS for s in SHAPES for lamp in ("on", "off")]
ACTION_BANK = [f"the robot {v} the {c} {s}" for v in ("picks up", "pushes", "places") for c in COLOURS for s in SHAPES]


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_ms(fn, repeats: int, warmup: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    ap.add_argument("--omp-passive", action="store_true", help="OMP_WAIT_POLICY=PASSIVE (see module doc)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    R, W = args.repeats, args.warmup

    res: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_name(), "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
                    "loadavg_1min_start": round(os.getloadavg()[0], 2)},
        "torch": torch.__version__,
        "repeats": R,
        "warmup": W,
        "latency_ms": {},
    }
    print(f"date {res['date']}  cpu {res['machine']['cpu']}  cores {os.cpu_count()}  "
          f"torch threads {torch.get_num_threads()}  torch {torch.__version__}  "
          f"OMP_WAIT_POLICY {res['machine']['omp_wait_policy']}  load avg (1 min) {os.getloadavg()[0]:.2f}")
    lat = res["latency_ms"]
    camera = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)

    with torch.no_grad():
        for size in (160, 224):
            model = VLJEPA(VLJEPAConfig(x_encoder=XEncoderConfig(image_size=size))).eval()
            cfg = model.cfg
            T, g = cfg.x_encoder.window_frames, cfg.x_encoder.grid
            x = preprocess_frame(camera, size)[None]
            feats = model.encode_frames(x)
            window = feats.expand(T, *feats.shape[1:])[None].contiguous()  # (1,T,C,g,g)
            s = f"{size}px"
            lat[f"preprocess_640x480_to_{s}"] = median_ms(lambda: preprocess_frame(camera, size), R, W)  # noqa: B023 (timed inside this iteration)
            lat[f"backbone_per_frame_{s}"] = median_ms(lambda: model.encode_frames(x), R, W)  # noqa: B023 (timed inside this iteration)
            wm = WorldModel(model, STATE_BANK, ACTION_BANK)
            stamp = [0.0]

            def frame_to_state():
                stamp[0] += 1 / 15  # noqa: B023 (timed inside this iteration)
                wm.push_frame(camera, stamp[0])  # noqa: B023 (timed inside this iteration)
                wm.state(top_k=5)  # noqa: B023 (timed inside this iteration)

            lat[f"frame_to_state_{s}"] = median_ms(frame_to_state, R, W)
            print(f"[{s}] preprocess {lat[f'preprocess_640x480_to_{s}']:.2f} ms | "
                  f"backbone/frame {lat[f'backbone_per_frame_{s}']:.2f} ms | "
                  f"push_frame+state (whole path) {lat[f'frame_to_state_{s}']:.2f} ms")

        # Stages after the backbone do not depend on the image size (features are pooled to g x g).
        n_vis = T * g * g
        lat["predictor_per_window"] = median_ms(lambda: model.predict(window, "what is on the table?"), R, W)
        lat["predictor_before_after"] = median_ms(
            lambda: model.predict(window, "what action happened?", before_window_features=window), R, W
        )
        lat["y_encode_one_phrase"] = median_ms(lambda: model.encode_text(["a red cube is on the table"]), R, W)
        bank = PhraseBank(model.y_encoder, STATE_BANK)
        lat[f"y_encode_bank_{len(STATE_BANK)}_uncached"] = median_ms(
            lambda: model.encode_text(STATE_BANK), max(5, R // 5), 2
        )
        emb = model.predict(window, "what is on the table?")
        retr = RetrievalDecoder(bank, model.temperature)
        lat[f"retrieval_decode_bank_{len(STATE_BANK)}"] = median_ms(lambda: retr.decode(emb), R, W)
        dcfg = GenerativeDecoderConfig()
        dec = GenerativeDecoder.from_texts(dcfg, STATE_BANK + ACTION_BANK, model.tokenizer).eval()
        lat[f"generative_decode_per_call_maxlen{dcfg.max_len}"] = median_ms(lambda: dec.decode(emb), max(10, R // 2), 2)
        emb8 = emb.expand(8, -1).contiguous()
        lat[f"generative_decode_batch8_maxlen{dcfg.max_len}"] = median_ms(lambda: dec.decode(emb8), max(5, R // 5), 2)
    print(f"predictor ({cfg.predictor.layers} layers, {n_vis} visual + query tokens): "
          f"{lat['predictor_per_window']:.2f} ms/window, "
          f"before+after {lat['predictor_before_after']:.2f} ms")
    print(f"Y-encoder: one phrase {lat['y_encode_one_phrase']:.2f} ms, bank of {len(STATE_BANK)} (uncached) "
          f"{lat[f'y_encode_bank_{len(STATE_BANK)}_uncached']:.2f} ms")
    print(f"retrieval decode (bank {len(STATE_BANK)}, cached): "
          f"{lat[f'retrieval_decode_bank_{len(STATE_BANK)}']:.3f} ms")
    print(f"generative decode (untrained -> always {dcfg.max_len} tokens, sub-vocab {dec.vocab_size}): "
          f"{lat[f'generative_decode_per_call_maxlen{dcfg.max_len}']:.2f} ms/call, batch of 8 "
          f"{lat[f'generative_decode_batch8_maxlen{dcfg.max_len}']:.2f} ms")

    counts = model.parameter_counts()
    parts = {
        "backbone": model.x_encoder.backbone,
        "x_encoder_trainable": [model.x_encoder.ln, model.x_encoder.proj],
        "predictor_layers": model.predictor.blocks,
        "y_encoder_layers": model.y_encoder.blocks,
        "text_embeddings": model.predictor.text_embeddings,
    }
    part_counts = {}
    for k, m in parts.items():
        mods = m if isinstance(m, list) else [m]
        part_counts[k] = sum(p.numel() for mod in mods for p in mod.parameters())
    dec_params = sum(p.numel() for p in dec.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        save_checkpoint(tmp, model, name="bench", decoder=dec, dtype="fp16")
        ck_mb = (Path(tmp) / WEIGHTS_FILE).stat().st_size / 1e6
        save_checkpoint(Path(tmp) / "nodec", model, name="bench", dtype="fp16")
        ck_nodec_mb = (Path(tmp) / "nodec" / WEIGHTS_FILE).stat().st_size / 1e6
    res["parameters"] = {**counts, "generative_decoder": dec_params, "parts": part_counts}
    res["checkpoint_fp16_mb"] = {"model_and_generative_decoder": round(ck_mb, 2), "model_only": round(ck_nodec_mb, 2)}
    res["config"] = cfg.to_dict()
    res["generative_decoder"] = {**dcfg.__dict__, "sub_vocab": dec.vocab_size}
    print(f"parameters: trainable {counts['trainable']:,}  frozen {counts['frozen']:,}  saved {counts['saved']:,}  "
          f"+ generative decoder {dec_params:,} (trainable, saved)")
    print("  parts: " + ", ".join(f"{k} {v:,}" for k, v in part_counts.items()))
    print(f"fp16 checkpoint (model.safetensors): {ck_nodec_mb:.2f} MB model only, "
          f"{ck_mb:.2f} MB with generative decoder")
    res["machine"]["loadavg_1min_end"] = round(os.getloadavg()[0], 2)
    print(f"load avg (1 min) at end {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
