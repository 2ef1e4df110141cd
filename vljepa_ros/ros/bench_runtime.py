"""Runtime benchmark of the ROS graph: camera, perception_node and decoder_node in separate OS processes.

    python -m vljepa_ros.ros.bench_runtime camera     --rate 30 --size 224 --frames 1200 --out cam.json
    python -m vljepa_ros.ros.bench_runtime perception --out p.json --stop-file STOP [--ros-args ...]
    python -m vljepa_ros.ros.bench_runtime decoder    --out d.json --stop-file STOP [--ros-args ...]
    python -m vljepa_ros.ros.bench_runtime soak --duration-s 3600 --rate 30 --width 640 --height 480

``soak`` (``make soak``) runs the three processes for ``--duration-s`` at one
camera rate and size, with the shipped large-image DDS profile, samples each
node's RSS every 5 s and prints the RSS slope (MB/hour, least squares from 10
minutes after the first processed frame, when the node's bounded latency
buffers are full), the latency of the last 10,000 frames and the frame
accounting; the report goes to ``--out`` (JSON).

``perception`` / ``decoder`` construct the real ``PerceptionNode`` /
``DecoderNode`` and spin them exactly as their ``main()`` does (a
single-threaded executor each); the only
addition is a sampler thread (counters and VmRSS every 0.5 s) and a JSON dump
of the node's counters, ``latencies_ms`` and ``stage_ms`` when the stop file
appears (or on SIGINT). ``camera`` replays pre-rendered frames of the
simulated tabletop (the dataset's PNGs, rendered by the simulator; resized
when another size is asked) as ``sensor_msgs/Image`` rgb8 with real stamps,
paced on absolute deadlines, so the camera rate is real even though the
simulator renders at only ~10-20 frames/s on a small machine.

:func:`run_runtime_benchmark` (used by ``vljepa-bench``) starts the three
processes per configuration and summarises. It drives ROS nodes, so it lives
in the ROS layer; only the role functions import rclpy, so importing this
module (``vljepa-bench --help``) still works without ROS.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from ..reporting import proc_status_kb
from .launch_support import DECODER_REMAPS

IMAGE_TOPIC = "/camera/image_raw"
EMBEDDING_TOPIC = "/" + DECODER_REMAPS["embedding"]
WARMUP_FRAMES = 15
REPO_ROOT = Path(__file__).resolve().parents[2]


class _Sampler(threading.Thread):
    def __init__(self, counters, period_s: float = 0.5):
        super().__init__(daemon=True, name="bench_sampler")
        self.counters, self.period_s = counters, period_s
        self.samples: list[dict] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        t0 = time.monotonic()
        while not self._stop_event.wait(self.period_s):
            self.samples.append({"t": round(time.monotonic() - t0, 3), **self.counters(),
                                 "rss_kb": proc_status_kb().get("VmRSS", 0)})

    def stop(self) -> None:
        self._stop_event.set()


def _write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _spin_until_stopped(node, executor, stop_file: str, dump) -> None:
    import rclpy

    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True, name="bench_spin")
    spinner.start()
    try:
        while rclpy.ok() and not os.path.exists(stop_file) and spinner.is_alive():
            time.sleep(0.1)
    except KeyboardInterrupt:
        pass
    dump()
    executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    rclpy.try_shutdown()


def role_perception(args, ros_args: list[str]) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from .perception_node import PerceptionNode

    rclpy.init(args=ros_args)
    node = PerceptionNode()
    sampler = _Sampler(lambda: node.stats(), args.sample_s)
    sampler.start()

    def dump():
        sampler.stop()
        _write_json(args.out, {"role": "perception", "pid": os.getpid(), "stats": node.stats(),
                               "latencies_ms": list(node.latencies_ms), "stage_ms": list(node.stage_ms),
                               "samples": sampler.samples, "status_kb": proc_status_kb(),
                               "model_id": node.pipeline.model_id})

    _spin_until_stopped(node, SingleThreadedExecutor(), args.stop_file, dump)  # as perception_node.main
    return 0


def role_decoder(args, ros_args: list[str]) -> int:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from .decoder_node import DecoderNode

    rclpy.init(args=ros_args)
    node = DecoderNode()
    counters = lambda: {"embeddings_seen": node.embeddings_seen, "events": node.events}  # noqa: E731
    sampler = _Sampler(counters, args.sample_s)
    sampler.start()

    def dump():
        sampler.stop()
        _write_json(args.out, {"role": "decoder", "pid": os.getpid(), **counters(),
                               "decoder": node.stream.counters(), "samples": sampler.samples,
                               "status_kb": proc_status_kb()})

    _spin_until_stopped(node, SingleThreadedExecutor(), args.stop_file, dump)  # rclpy.spin, as decoder_node.main
    return 0


def load_frames(data_root: str, split: str, size: int, limit: int, width: int = 0,
                height: int = 0) -> list[np.ndarray]:
    """Pre-rendered RGB frames of the split's episodes, in order, resized to
    size x size (or width x height when given: a real camera's 640x480)."""
    from PIL import Image as PILImage

    from ..data.dataset import Dataset

    w, h = width or size, height or size
    ds = Dataset(data_root, split)
    frames = []
    for ep in ds.episodes():
        for f in ds.episode_frames(ep):
            rgb = f.image
            if rgb.shape[0] != h or rgb.shape[1] != w:
                rgb = np.asarray(PILImage.fromarray(rgb).resize((w, h), PILImage.BILINEAR))
            frames.append(np.ascontiguousarray(rgb))
            if len(frames) >= limit:
                return frames
    return frames


def role_camera(args, ros_args: list[str]) -> int:
    import array

    import rclpy
    from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image

    frames = load_frames(args.data, args.split, args.size, min(args.frames, args.preload), args.width, args.height)
    rclpy.init(args=ros_args)
    node = rclpy.create_node("bench_camera")
    qos = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=5, reliability=QoSReliabilityPolicy.RELIABLE,
                     durability=QoSDurabilityPolicy.VOLATILE)  # sim_camera_node's default image QoS
    pub = node.create_publisher(Image, IMAGE_TOPIC, qos)
    msgs = []
    for rgb in frames:
        m = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", is_bigendian=0, step=rgb.shape[1] * 3)
        m.header.frame_id = "bench_camera_optical_frame"
        m.data = array.array("B", rgb.tobytes())
        msgs.append(m)
    deadline = time.monotonic() + args.wait_s
    while pub.get_subscription_count() < 1 or node.count_subscribers(EMBEDDING_TOPIC) < 1:
        if time.monotonic() > deadline:
            print("bench camera: perception_node/decoder_node not discovered", file=sys.stderr)
            return 3
        time.sleep(0.1)
    time.sleep(args.settle_s)
    period = 1.0 / args.rate
    lags = []
    t0 = time.monotonic()
    for i in range(args.frames):
        target = t0 + i * period
        now = time.monotonic()
        if target > now:
            time.sleep(target - now)
        msg = msgs[i % len(msgs)]
        msg.header.stamp = node.get_clock().now().to_msg()
        pub.publish(msg)
        lags.append(time.monotonic() - target)
    duration = time.monotonic() - t0
    _write_json(args.out, {"role": "camera", "published": args.frames, "duration_s": duration,
                           "achieved_hz": (args.frames - 1) / duration if duration > 0 else 0.0,
                           "rate_hz": args.rate, "image_size": args.size, "frames_in_memory": len(msgs),
                           "lag_p95_ms": float(np.percentile(lags, 95) * 1e3), "lag_max_ms": float(max(lags) * 1e3)})
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


# ---------------------------------------------------------------------------
# Orchestration (no rclpy here)
# ---------------------------------------------------------------------------


def params_file() -> str:
    p = REPO_ROOT / "config" / "perception.yaml"
    if p.exists():
        return str(p)
    try:
        from ament_index_python.packages import get_package_share_directory

        return str(Path(get_package_share_directory("vljepa_ros")) / "config" / "perception.yaml")
    except (ImportError, LookupError):
        return str(p)


def child_env() -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # Keep the benchmark's DDS traffic to itself (other runs on this machine) unless the user chose a domain.
    env.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGINT (a ROS node shuts down cleanly), then kill after ``timeout`` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pct(x, q) -> float:
    return float(np.percentile(np.asarray(x, dtype=np.float64), q)) if len(x) else float("nan")


def summarise(rate: float, size: int, cam: dict, per: dict, dec: dict, warmup: int = WARMUP_FRAMES) -> dict:
    lat = per["latencies_ms"][warmup:]
    stages = per["stage_ms"][warmup:]
    third = max(1, len(lat) // 3)
    stats = per["stats"]
    stage_p50 = {k: _pct([s[k] for s in stages if k in s], 50) for k in (stages[0] if stages else {})}
    stage_p95 = {k: _pct([s[k] for s in stages if k in s], 95) for k in (stages[0] if stages else {})}
    rss = [s["rss_kb"] for s in per["samples"] if s.get("processed", 0) > 0]
    drss = [s["rss_kb"] for s in dec["samples"] if s.get("embeddings_seen", 0) > 0]
    return {
        "rate_hz": rate, "image_size": size,
        "published": cam["published"], "camera_achieved_hz": cam["achieved_hz"],
        "camera_lag_p95_ms": cam["lag_p95_ms"], "frames_in_memory": cam["frames_in_memory"],
        "received": stats["received"], "processed": stats["processed"], "dropped": stats["dropped"],
        "lost": cam["published"] - stats["received"], "malformed": stats["malformed"],
        "processed_fps": stats["processed"] / cam["duration_s"] if cam["duration_s"] > 0 else 0.0,
        "latency_frames": len(lat),
        "latency_p50_ms": _pct(lat, 50), "latency_p95_ms": _pct(lat, 95), "latency_max_ms": max(lat) if lat else 0.0,
        "stage_p50_ms": stage_p50, "stage_p95_ms": stage_p95,
        "p95_first_third_ms": _pct(lat[:third], 95), "p95_last_third_ms": _pct(lat[-third:], 95),
        "latency_bounded": bool(lat) and _pct(lat[-third:], 95) <= 1.5 * _pct(lat[:third], 95) + 5.0,
        "perception_peak_rss_mb": per["status_kb"].get("VmHWM", 0) / 1024,
        "decoder_peak_rss_mb": dec["status_kb"].get("VmHWM", 0) / 1024,
        "perception_rss_first_last_mb": [rss[0] / 1024, rss[-1] / 1024] if rss else None,
        "decoder_rss_first_last_mb": [drss[0] / 1024, drss[-1] / 1024] if drss else None,
        "embeddings_seen_by_decoder": dec["embeddings_seen"], "decodes": dec["decoder"]["decodes"],
        "events": dec["events"], "mean_decode_ms": dec["decoder"]["mean_decode_ms"],
    }


def run_config(rate: float, size: int, frames: int, *, data_root: str, split: str, model_path: str,
               log_dir: str, preload: int = 700, env: dict | None = None, width: int = 0, height: int = 0,
               raw: bool = False, sample_s: float = 0.5) -> dict:
    """One run of the three processes; the summary (``raw``: the per-process JSON too)."""
    os.makedirs(log_dir, exist_ok=True)
    tag = f"{rate:g}hz-{f'{width}x{height}' if width else size}px-{frames}"
    files = {r: os.path.join(log_dir, f"{tag}-{r}.json") for r in ("camera", "perception", "decoder")}
    stop = os.path.join(log_dir, f"{tag}.stop")
    for p in (*files.values(), stop):
        if os.path.exists(p):
            os.remove(p)
    env = env or child_env()
    py = [sys.executable, "-m", "vljepa_ros.ros.bench_runtime"]
    common = ["--ros-args", "--params-file", params_file()]
    if model_path:
        common += ["-p", f"model_path:={model_path}"]
    procs = {}
    logs = {r: open(os.path.join(log_dir, f"{tag}-{r}.log"), "w") for r in files}
    try:
        procs["perception"] = subprocess.Popen(
            py + ["perception", "--out", files["perception"], "--stop-file", stop, "--sample-s", str(sample_s)] + common
            + ["-r", f"image:={IMAGE_TOPIC}"], env=env, stdout=logs["perception"], stderr=subprocess.STDOUT)
        procs["decoder"] = subprocess.Popen(
            py + ["decoder", "--out", files["decoder"], "--stop-file", stop, "--sample-s", str(sample_s)] + common
            + [a for src, dst in DECODER_REMAPS.items() for a in ("-r", f"{src}:=/{dst}")],
            env=env, stdout=logs["decoder"], stderr=subprocess.STDOUT)
        procs["camera"] = subprocess.Popen(
            py + ["camera", "--out", files["camera"], "--rate", str(rate), "--size", str(size), "--frames",
                  str(frames), "--data", data_root, "--split", split, "--preload", str(preload),
                  "--width", str(width), "--height", str(height)],
            env=env, stdout=logs["camera"], stderr=subprocess.STDOUT)
        try:
            rc = procs["camera"].wait(timeout=180 + 1.5 * frames / rate)
        except subprocess.TimeoutExpired:
            rc = None
        time.sleep(2.0)  # let the last frames drain through perception and the decoder
        Path(stop).touch()
        for r in ("perception", "decoder"):
            try:
                procs[r].wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        missing = [r for r, p in files.items() if not os.path.exists(p)]
        if rc != 0 or missing:
            return {"rate_hz": rate, "image_size": size, "error": f"camera exit {rc}; no result from {missing} "
                    f"(logs in {log_dir})"}
        data = {r: json.load(open(p)) for r, p in files.items()}
        summary = summarise(rate, size, data["camera"], data["perception"], data["decoder"])
        return {**summary, "raw": data} if raw else summary
    finally:
        for p in procs.values():
            stop_process(p)
        for f in logs.values():
            f.close()


def plan(quick: bool, budget_s: float) -> list[tuple[float, int, int]]:
    """(rate, size, frames) per run. >= 500 processed frames for each latency figure; the 30 Hz 224 px run is
    the long run (bounded latency, memory) and gets what is left of the camera-time budget."""
    if quick:
        return [(15.0, 160, 90), (30.0, 224, 180)]
    runs = [(15.0, 224, 600), (15.0, 160, 600), (30.0, 160, 1200)]
    used = sum(f / r for r, _, f in runs)
    long_frames = max(1200, int((budget_s - used) * 30.0))
    return runs + [(30.0, 224, long_frames)]


def run_runtime_benchmark(data_root: str, split: str = "test", model_path: str = "", quick: bool = False,
                          budget_s: float = 480.0, log_dir: str = "reports/bench_runtime") -> dict:
    runs = []
    t0 = time.time()
    for rate, size, frames in plan(quick, budget_s):
        print(f"runtime: camera {rate:g} Hz, {size} px, {frames} frames ...", flush=True)
        r = run_config(rate, size, frames, data_root=data_root, split=split, model_path=model_path, log_dir=log_dir)
        runs.append(r)
        if "error" in r:
            print(f"  error: {r['error']}", flush=True)
        else:
            print(f"  latency p50 {r['latency_p50_ms']:.1f} ms, p95 {r['latency_p95_ms']:.1f} ms over "
                  f"{r['latency_frames']} frames; {r['processed_fps']:.1f} fps processed; dropped {r['dropped']}, "
                  f"lost {r['lost']}; p95 first/last third "
                  f"{r['p95_first_third_ms']:.1f}/{r['p95_last_third_ms']:.1f} ms; peak RSS perception "
                  f"{r['perception_peak_rss_mb']:.0f} MB, decoder {r['decoder_peak_rss_mb']:.0f} MB",
                  flush=True)
    ok = [r for r in runs if "error" not in r]
    longest = max(ok, key=lambda r: r["published"]) if ok else None
    note = ""
    if longest:
        p_rss, d_rss = longest["perception_rss_first_last_mb"], longest["decoder_rss_first_last_mb"]
        note = (f"Long run: {longest['published']} camera frames at {longest['rate_hz']:g} Hz "
                f"({longest['processed']} processed); RSS perception first/last sample "
                f"{p_rss[0]:.0f}/{p_rss[1]:.0f} MB, decoder {d_rss[0]:.0f}/{d_rss[1]:.0f} MB. "
                + ("" if longest["published"] >= 10_000 else
                   "evaluation.md asks for 10,000 frames; this run is capped by the time budget (--runtime-budget-s)."))
    return {"runs": runs, "warmup_frames": WARMUP_FRAMES, "seconds": round(time.time() - t0, 1), "note": note,
            "long_run_frames": longest["published"] if longest else 0}


SOAK_SAMPLE_S = 5.0  # one RSS sample per 5 s: the sampler's own list grows by 720 small dicts an hour (<0.5 MB)
SOAK_FIT_AFTER_S = 600.0  # the fit starts 10 min after the first processed frame: the node's 10,000-entry
                          # latency buffers are full by then (they grow ~4 MB while filling)


def rss_slope_mb_per_hour(samples: list[dict], skip_s: float = 60.0, start_key: str | None = None) -> float:
    """Least-squares slope of a process's RSS samples ({"t": s, "rss_kb": kB})
    from ``skip_s`` after the first sample (or, with ``start_key``, after the
    first sample where that counter is > 0: the first processed frame), in MB
    per hour; NaN with fewer than 10 samples."""
    started = [s["t"] for s in samples if start_key is None or s.get(start_key, 0) > 0]
    if not started:
        return float("nan")
    kept = [(s["t"], s["rss_kb"] / 1024) for s in samples if s["t"] >= started[0] + skip_s and s.get("rss_kb")]
    if len(kept) < 10:
        return float("nan")
    t, mb = np.asarray(kept).T
    return float(np.polyfit(t, mb, 1)[0] * 3600.0)


def _soak_files(log_dir: str) -> dict:
    found = {r: sorted(Path(log_dir).glob(f"*-{r}.json")) for r in ("camera", "perception", "decoder")}
    if not all(found.values()):
        raise FileNotFoundError(f"{log_dir}: no soak run's camera / perception / decoder JSON here")
    return {r: json.loads(files[-1].read_text()) for r, files in found.items()}


def summarise_soak(raw: dict, rate: float, width: int, height: int) -> dict:
    """The soak report from the three processes' JSON (``run_config(raw=True)``)."""
    cam, per, dec = raw["camera"], raw["perception"], raw["decoder"]
    stats = per["stats"]
    lat = per["latencies_ms"]  # the last 10,000 frames (the node keeps those)
    tenths = np.array_split(np.asarray(lat), 10) if len(lat) >= 10 else []
    every = max(1, round(300.0 / (per["samples"][1]["t"] - per["samples"][0]["t"]))) if len(per["samples"]) > 1 else 1
    accounted = sum(stats.get(k, 0) for k in ("processed", "dropped", "malformed", "stale", "rate_skipped", "invalid"))
    return {
        "rate_hz": rate, "width": width, "height": height,
        "published": cam["published"], "camera_duration_s": cam["duration_s"], "camera_achieved_hz": cam["achieved_hz"],
        "perception_stats": stats, "received": stats["received"],
        "not_received": cam["published"] - stats["received"],  # published, never reached the node (DDS)
        "accounted": accounted,  # processed + dropped + malformed + stale + rate_skipped + invalid
        "processed_fps": stats["processed"] / cam["duration_s"] if cam["duration_s"] > 0 else 0.0,
        "latency_p50_ms_last_10k": _pct(lat, 50), "latency_p95_ms_last_10k": _pct(lat, 95),
        "latency_p95_ms_per_tenth_of_last_10k": [round(_pct(x, 95), 1) for x in tenths],
        "perception_peak_rss_mb": per["status_kb"].get("VmHWM", 0) / 1024,
        "decoder_peak_rss_mb": dec["status_kb"].get("VmHWM", 0) / 1024,
        "rss_fit_after_first_frame_s": SOAK_FIT_AFTER_S,
        "perception_rss_slope_mb_per_h": rss_slope_mb_per_hour(per["samples"], SOAK_FIT_AFTER_S, "processed"),
        "decoder_rss_slope_mb_per_h": rss_slope_mb_per_hour(dec["samples"], SOAK_FIT_AFTER_S, "embeddings_seen"),
        "perception_rss_mb_every_5_min": [round(s["rss_kb"] / 1024, 1) for s in per["samples"][::every]],
        "decoder_rss_mb_every_5_min": [round(s["rss_kb"] / 1024, 1) for s in dec["samples"][::every]],
        "embeddings_seen_by_decoder": dec["embeddings_seen"], "events": dec["events"],
    }


def run_soak(duration_s: float, rate: float, width: int, height: int, *, data_root: str, split: str = "test",
             model_path: str = "", log_dir: str = "reports/soak", summarise_only: bool = False) -> dict:
    """The soak: one long run with the large-image DDS profile (README, "real cameras");
    ``summarise_only``: report the last run kept in ``log_dir`` again."""
    env = child_env()
    env.setdefault("FASTRTPS_DEFAULT_PROFILES_FILE", str(REPO_ROOT / "config" / "fastdds_large_images.xml"))
    if not summarise_only:
        r = run_config(rate, 0, int(duration_s * rate), data_root=data_root, split=split, model_path=model_path,
                       log_dir=log_dir, env=env, width=width, height=height, raw=True, sample_s=SOAK_SAMPLE_S,
                       preload=300)  # 300 frames: 276 MB at 640x480
        if "error" in r:
            return r
    return {**summarise_soak(_soak_files(log_dir), rate, width, height),
            "dds_profile": env["FASTRTPS_DEFAULT_PROFILES_FILE"]}


def soak_main(args) -> int:
    if not args.summarise_only:
        print(f"soak: camera {args.rate:g} Hz, {args.width}x{args.height}, {args.duration_s:.0f} s ...", flush=True)
    r = run_soak(args.duration_s, args.rate, args.width, args.height, data_root=args.data, split=args.split,
                 model_path=args.model_path, log_dir=os.path.join(os.path.dirname(args.out) or ".", "soak"),
                 summarise_only=args.summarise_only)
    if "error" in r:
        print(f"soak: {r['error']}", file=sys.stderr)
        return 1
    _write_json(args.out, r)
    st = r["perception_stats"]
    print(f"soak: {r['published']} frames published in {r['camera_duration_s']:.0f} s at "
          f"{r['camera_achieved_hz']:.1f} Hz; perception_node received {r['received']} ({r['not_received']} never "
          f"arrived): processed {st['processed']} ({r['processed_fps']:.1f} fps), dropped {st['dropped']} (replaced "
          f"while busy), malformed {st['malformed']}, stale {st['stale']}, rate-skipped {st['rate_skipped']}, "
          f"invalid {st.get('invalid', 0)}: {r['accounted']} accounted for; lost by stamp gaps {st['lost']}; "
          f"{r['events']} events", flush=True)
    print(f"soak: latency p50 {r['latency_p50_ms_last_10k']:.1f} ms, p95 {r['latency_p95_ms_last_10k']:.1f} ms "
          "(the last 10,000 frames)", flush=True)
    print(f"soak: RSS slope perception {r['perception_rss_slope_mb_per_h']:+.1f} MB/h, decoder "
          f"{r['decoder_rss_slope_mb_per_h']:+.1f} MB/h (least squares from {SOAK_FIT_AFTER_S:.0f} s after the "
          f"first frame); peak RSS perception {r['perception_peak_rss_mb']:.0f} MB, decoder "
          f"{r['decoder_peak_rss_mb']:.0f} MB; report {args.out}", flush=True)
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args: list[str] = []
    if "--ros-args" in argv:
        k = argv.index("--ros-args")
        argv, ros_args = argv[:k], argv[k:]
    parser = argparse.ArgumentParser(prog="python -m vljepa_ros.ros.bench_runtime",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="role", required=True)
    for role in ("perception", "decoder"):
        p = sub.add_parser(role)
        p.add_argument("--out", required=True)
        p.add_argument("--stop-file", required=True)
        p.add_argument("--sample-s", type=float, default=0.5, help="counters and RSS sampled this often")
    p = sub.add_parser("camera")
    p.add_argument("--out", required=True)
    p.add_argument("--rate", type=float, default=15.0)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--frames", type=int, default=600)
    p.add_argument("--preload", type=int, default=700, help="frames kept in memory (replayed in a loop)")
    p.add_argument("--data", default="data/tabletop")
    p.add_argument("--split", default="test")
    p.add_argument("--wait-s", type=float, default=120.0)
    p.add_argument("--settle-s", type=float, default=2.0)
    p.add_argument("--width", type=int, default=0, help="frame width (0: --size)")
    p.add_argument("--height", type=int, default=0, help="frame height (0: --size)")
    p = sub.add_parser("soak", help="long run: RSS slope of each node, latency, frame accounting")
    p.add_argument("--duration-s", type=float, default=3600.0)
    p.add_argument("--rate", type=float, default=30.0)
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--data", default="data/tabletop")
    p.add_argument("--split", default="test")
    p.add_argument("--model-path", default="")
    p.add_argument("--out", default="reports/soak.json")
    p.add_argument("--summarise-only", action="store_true", help="report the last run kept in reports/soak/ again")
    args = parser.parse_args(argv)
    if args.role == "soak":
        return soak_main(args)
    role = {"perception": role_perception, "decoder": role_decoder, "camera": role_camera}[args.role]
    return role(args, ["--ros-args", *ros_args[1:]] if ros_args else [])


if __name__ == "__main__":
    sys.exit(main())
