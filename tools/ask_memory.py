"""RSS of perception_node under ~/ask calls with ever new candidates (issue 11,
fault 4: 200 new candidates per call took it from 684 to 2,630 MB over 1,200
calls). Starts the real node as its own process, sends one camera frame, then
``--calls`` asks of ``--candidates`` phrases never seen before, and prints the
node's RSS every ``--every`` calls and the slope of the second half.

    python tools/ask_memory.py --calls 10000 --candidates 200      # the issue's measure (hours on 2 cores)
    python tools/ask_memory.py --calls 60 --candidates 100 --text-cache-mb 4   # quick: the cache wraps
    python tools/ask_memory.py --probe /ask_memory/perception_node/ask        # time 5 calls from a new client
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def probe(service: str, candidates: int, calls: int = 5) -> int:
    import rclpy

    from vljepa_ros.srv import Ask

    rclpy.init()
    node = rclpy.create_node("ask_memory_probe")
    try:
        client = node.create_client(Ask, service)
        if not client.wait_for_service(timeout_sec=20):
            print(f"{service}: no such service", file=sys.stderr)
            return 1
        for k in range(calls):
            request = Ask.Request(question="which is it?",
                                  candidates=[f"a probe phrase {time.time()} {k} {j}" for j in range(candidates)])
            t0 = time.perf_counter()
            future = client.call_async(request)
            rclpy.spin_until_future_complete(node, future, timeout_sec=120)
            ok = future.result() is not None and future.result().success
            print(f"probe call {k}: {(time.perf_counter() - t0) * 1e3:.0f} ms ({candidates} new candidates, "
                  f"success {ok})", flush=True)
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--candidates", type=int, default=200)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--text-cache-mb", type=float, default=None,
                    help="perception_node text_cache_mb (default: its own)")
    ap.add_argument("--probe", metavar="SERVICE", default=None,
                    help="only time 5 calls (--candidates new phrases each) from a fresh client to a running "
                         "node's ~/ask: is a long run's slowness in the node or in its client?")
    args = ap.parse_args(argv)
    if args.probe:
        return probe(args.probe, args.candidates)

    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    from vljepa_ros.imaging import rgb_to_image_fields
    from vljepa_ros.srv import Ask

    params = ["-r", "image:=/ask_memory/image", "-r", "__ns:=/ask_memory"]
    if args.text_cache_mb is not None:
        params += ["-p", f"text_cache_mb:={args.text_cache_mb}"]
    node_proc = subprocess.Popen([sys.executable, "-m", "vljepa_ros.ros.perception_node", "--ros-args", *params],
                                 env=dict(os.environ, PYTHONUNBUFFERED="1"))
    rclpy.init()
    node = rclpy.create_node("ask_memory_client")
    try:
        pub = node.create_publisher(Image, "/ask_memory/image", 10)
        client = node.create_client(Ask, "/ask_memory/perception_node/ask")
        if not client.wait_for_service(timeout_sec=120):
            print("perception_node did not come up", file=sys.stderr)
            return 1
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        h, w, step, data = rgb_to_image_fields(np.zeros((160, 160, 3), np.uint8), "rgb8")
        msg = Image(height=h, width=w, step=step, encoding="rgb8", data=data)
        msg.header.stamp.sec = 1_700_000_000
        pub.publish(msg)
        time.sleep(2.0)
        samples = [(0, rss_mb(node_proc.pid))]
        print(f"calls {0:>6}  RSS {samples[0][1]:8.1f} MB", flush=True)
        t0 = time.monotonic()
        for call in range(1, args.calls + 1):
            candidates = [f"a phrase never asked before, call {call} candidate {k}" for k in range(args.candidates)]
            future = client.call_async(Ask.Request(question="which is it?", candidates=candidates))
            rclpy.spin_until_future_complete(node, future, timeout_sec=120)
            response = future.result()
            if response is None or not response.success:
                print(f"call {call}: {response.message if response else 'no answer'}", file=sys.stderr)
                return 1
            if call % args.every == 0 or call == args.calls:
                samples.append((call, rss_mb(node_proc.pid)))
                print(f"calls {call:>6}  RSS {samples[-1][1]:8.1f} MB  ({time.monotonic() - t0:.0f} s)", flush=True)
        half = [s for s in samples if s[0] >= args.calls / 2]
        if len(half) >= 2:
            x, y = np.array([s[0] for s in half], float), np.array([s[1] for s in half])
            slope = np.polyfit(x, y, 1)[0] * 1000
            print(f"RSS slope over the second half: {slope:+.1f} MB per 1000 calls "
                  f"({args.candidates} new candidates each)")
        return 0
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        node_proc.terminate()
        node_proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
