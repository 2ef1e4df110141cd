"""vljepa-bench, ROS-free parts: curve arithmetic on a hand-made case, the quality
benchmark's plumbing on tiny synthetic streams (no model), the report writers, --help."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT
from vljepa_ros.benchmark.curves import decode_reduction, decodes_for_quality, quality_at_decodes
from vljepa_ros.benchmark.policies import quality_benchmark, selective_run, uniform_curve
from vljepa_ros.benchmark.report import GENERATED_MARKER, write_markdown
from vljepa_ros.benchmark.streams import Mapper, Stream
from vljepa_ros.change_detection import ChangeDetectorConfig

FPS = 15.0


def test_decode_reduction_hand_made():
    # Uniform: 10 -> 0.5, 100 -> 0.7, 1000 -> 0.9. Selective: 20 decodes at quality 0.8.
    # Uniform reaches 0.8 halfway between 100 and 1000 in log-decodes: 10**2.5 = 316.23 -> 15.81x.
    r = decode_reduction([1000, 10, 100], [0.9, 0.5, 0.7], 20, 0.8)
    assert r["uniform_decodes_same_quality"] == pytest.approx(10 ** 2.5)
    assert r["decode_reduction"] == pytest.approx(10 ** 2.5 / 20)
    assert not r["decode_reduction_is_lower_bound"]
    # Uniform quality at 20 decodes: log10(20) = 1.301 -> 0.5 + 0.2 * 0.301.
    assert r["uniform_quality_same_decodes"] == pytest.approx(0.5 + 0.2 * math.log10(2))


def test_curve_edges():
    # Never reached: the largest decode count, flagged (the ratio is a lower bound).
    r = decode_reduction([10, 100], [0.2, 0.4], 5, 0.9)
    assert r["decode_reduction"] == pytest.approx(100 / 5) and r["decode_reduction_is_lower_bound"]
    # Reached at the first point already; the first crossing wins on a non-monotone curve.
    assert decodes_for_quality([10, 100], [0.95, 0.99], 0.9) == (10.0, True)
    d, ok = decodes_for_quality([10, 100, 1000], [0.5, 0.9, 0.6], 0.7)
    assert ok and d == pytest.approx(10 ** 1.5)
    # Quality is clamped outside the curve.
    assert quality_at_decodes([10, 100], [0.3, 0.6], 1) == pytest.approx(0.3)
    assert quality_at_decodes([10, 100], [0.3, 0.6], 1e6) == pytest.approx(0.6)
    with pytest.raises(ValueError):
        decodes_for_quality([0, 10], [0.1, 0.2], 0.1)


def _synthetic(seed: int, n_states: int = 4, dim: int = 32):
    """States = random unit vectors; each episode: static stretches of 4-6 s, 0.6 s linear transitions."""
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(n_states, dim))
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    streams = []
    for ep in range(2):
        seq = [ep % n_states, (ep + 1) % n_states, (ep + 2) % n_states, ep % n_states]
        emb, truth, trans = [], [], []
        for k, s in enumerate(seq):
            if k:
                trans.append(len(emb) / FPS)
                prev = seq[k - 1]
                for j in range(9):
                    u = (j + 1) / 10
                    emb.append((1 - u) * states[prev] + u * states[s])
                    truth.append(prev if u < 0.5 else s)
            for _ in range(int(rng.uniform(4, 6) * FPS)):
                emb.append(states[s] + 0.01 * rng.normal(size=dim))
                truth.append(s)
        e = np.asarray(emb, dtype=np.float32)
        e /= np.linalg.norm(e, axis=1, keepdims=True)
        streams.append(Stream(f"ep{ep}", np.arange(len(e)) / FPS, e, np.asarray(truth), np.asarray(trans)))

    def decode(embeddings):
        e = np.asarray(embeddings, dtype=np.float64)
        ids = (e @ states.T).argmax(1)
        return ids, states[ids]

    return streams, Mapper(decode=decode, truth_embeddings=states)


def test_quality_benchmark_on_synthetic_streams():
    streams, mapper = _synthetic(0)
    q = quality_benchmark(streams, mapper, strides=(1, 5, 15, 45), thresholds=(0.1, 0.3),
                          config=ChangeDetectorConfig(), ward_factors=(1.0,), fps=FPS)
    for key in ("decode_reduction", "selective_quality", "uniform_quality_same_decodes", "decodes_per_transition",
                "event_precision", "event_recall", "selective_similarity", "curves"):
        assert key in q
    uni = q["curves"]["uniform"]
    # Stride 1 decodes every frame; with perfect retrieval it is only wrong on the transition frames.
    assert uni[0]["decodes"] == sum(s.n for s in streams) and uni[0]["quality"] > 0.97
    assert [u["decodes"] for u in uni] == sorted((u["decodes"] for u in uni), reverse=True)
    # Clean synthetic transitions: one initial decode per episode + one per transition, all detected.
    assert q["true_transitions"] == 6 and q["initial_decodes"] == 2
    assert q["decodes_per_transition"] == pytest.approx(8 / 6)
    assert q["event_precision"] == 1.0 and q["event_recall"] == 1.0
    assert q["selective_quality"] > 0.8  # the decode waits for the new state to settle (~1 s per change)
    # The reduction is consistent with the curve it was computed from.
    need = q["uniform_decodes_same_quality"]
    assert q["decode_reduction"] == pytest.approx(need / q["selective_decodes"])
    assert q["decode_reduction"] > 1.0
    json.dumps(q)  # serialisable as is


def test_markdown_keeps_the_intro(tmp_path):
    path = tmp_path / "docs" / "benchmarks.md"
    write_markdown(str(path), "generated 1\n")
    text = path.read_text()
    assert text.startswith("# Benchmarks") and GENERATED_MARKER not in text  # the generator writes the marker itself
    path.write_text("# My intro\n\nhand-written\n\n" + GENERATED_MARKER + "\nold numbers\n")
    write_markdown(str(path), GENERATED_MARKER + "\nnew numbers\n")
    text = path.read_text()
    assert text.startswith("# My intro\n\nhand-written") and "new numbers" in text and "old numbers" not in text


def test_cli_help_without_rclpy():
    code = ("import sys, runpy; sys.argv = ['vljepa-bench', '--help']\n"
            "import vljepa_ros.apps.bench, vljepa_ros.ros.bench_runtime\n"
            "assert 'rclpy' not in sys.modules, 'bench imports rclpy at module level'\n"
            "from vljepa_ros.apps.bench import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--skip-runtime" in r.stdout and "--quick" in r.stdout and "--out-dir" in r.stdout
    assert "--skip-backends" in r.stdout


def test_every_policy_decodes_the_readings_when_the_streams_have_them():
    # the embeddings drift to a wrong state; the readings (what perception read
    # fact by fact on each frame) name the truth: every policy must decode those
    streams, mapper = _synthetic(1)
    states = mapper.truth_embeddings
    for s in streams:
        s.readings, s.reading_ids = states[s.truth].astype(np.float32), s.truth.copy()
        s.embeddings = np.tile(states[(s.truth[:1] + 1) % len(states)].astype(np.float32), (s.n, 1))
    triggers_only = selective_run(streams, mapper, ChangeDetectorConfig())
    assert triggers_only["decodes"] == 2 and triggers_only["quality"] > 0.2  # the initial decode reads the truth
    uni = uniform_curve(streams, mapper, (1,))
    assert uni[0]["quality"] == pytest.approx(1.0)
    for s in streams:
        s.readings = None
    assert uniform_curve(streams, mapper, (1,))[0]["quality"] < 0.5  # without readings: the stream's wrong state


def test_rss_slope_is_the_least_squares_growth_after_the_first_minute():
    from vljepa_ros.ros.bench_runtime import rss_slope_mb_per_hour

    flat = [{"t": t, "rss_kb": 800 * 1024 + (50_000 if t < 60 else 0)} for t in range(0, 600, 1)]
    assert abs(rss_slope_mb_per_hour(flat)) < 1e-6  # the start-up growth is left out
    growing = [{"t": t, "rss_kb": 800 * 1024 + t * 1024 / 36} for t in range(0, 3600, 5)]  # +100 MB/h
    assert abs(rss_slope_mb_per_hour(growing) - 100.0) < 0.5
    assert math.isnan(rss_slope_mb_per_hour(growing[:15]))  # too few samples
    # from the first processed frame on: a node that waits 20 min for its camera has a flat start
    late = [dict(s, processed=int(s["t"] >= 1200)) for s in growing]
    assert abs(rss_slope_mb_per_hour(late, 600.0, "processed") - 100.0) < 0.5
    assert len([s for s in late if s["t"] >= 1800]) > 10


def test_backends_table_gives_ratios_to_torch_and_names_what_was_skipped(monkeypatch):
    import importlib.util

    from vljepa_ros.benchmark import backends

    def run(backend, rate, p95):
        return {"backend": backend, "rate_hz": rate, "frames": 10, "processed": 9, "dropped": 1,
                "latency_p50_ms": p95 / 2, "latency_p95_ms": p95, "peak_rss_mb": 300.0, "model_id": "m@1",
                "stages_ms": {"backbone": 1.0, "predictor": 2.0, "action": 0.1}}

    results = {"date": "d", "cpu": "c", "cores": 2, "loadavg_start": 1.0, "loadavg_end": 1.0, "episode_seed": 7,
               "frames": 10, "skipped": {"openvino": "not installed"},
               "perception": [run("torch", 30.0, 40.0), run("onnxruntime", 30.0, 20.0)],
               "decoder": [{"backend": "torch", "decode_p50_ms": 10.0, "decode_max_ms": 12.0, "decode_calls": 3,
                            "peak_rss_mb": 500.0},
                           {"backend": "onnxruntime", "decode_p50_ms": 5.0, "decode_max_ms": 6.0, "decode_calls": 3,
                            "peak_rss_mb": 250.0}]}
    text = "\n".join(backends.markdown(results))
    assert "| onnxruntime | 30 Hz | 10.0 | 20.0 | 0.50x | 9 / 10 |" in text
    assert "| onnxruntime | 5.0 | 6.0 | 0.50x | 3 | 250 |" in text
    assert "openvino: skipped (not installed)" in text
    # an engine that is not installed is skipped with the reason, without loading anything
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert "not installed" in backends._available("openvino", None, log=lambda m: None)
