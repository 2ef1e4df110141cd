"""Large images through real DDS between two OS processes.

    python -m ros_helpers.image_stream receive <width> <height> <frames> <rate_hz>
        subscribe best effort (as perception_node does), start a publisher
        process, print one JSON line {"sent", "received", "rate_hz"}
    python -m ros_helpers.image_stream send <width> <height> <frames> <rate_hz>
        the publisher (started by receive)

Both inherit the environment, so FASTRTPS_DEFAULT_PROFILES_FILE applies to both.
"""
import json
import subprocess
import sys
import time

import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

TOPIC = "/vljepa_test/large_image"


def send(width: int, height: int, frames: int, rate_hz: float) -> int:
    node = rclpy.create_node("vljepa_test_image_sender")
    pub = node.create_publisher(Image, TOPIC, qos_profile_sensor_data)
    deadline = time.monotonic() + 20
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # discovery completes on both sides
    data = bytes(width * height * 3)
    for k in range(frames):
        msg = Image(height=height, width=width, step=width * 3, encoding="rgb8", data=data)
        msg.header.stamp.sec = k
        pub.publish(msg)
        time.sleep(1.0 / rate_hz)
    time.sleep(1.0)
    node.destroy_node()
    return 0


def receive(width: int, height: int, frames: int, rate_hz: float) -> int:
    node = rclpy.create_node("vljepa_test_image_receiver")
    arrivals = {}
    node.create_subscription(Image, TOPIC, lambda m: arrivals.setdefault(m.header.stamp.sec, time.monotonic()),
                             qos_profile_sensor_data)
    sender = subprocess.Popen([sys.executable, "-m", "ros_helpers.image_stream", "send", str(width), str(height),
                               str(frames), str(rate_hz)])
    while sender.poll() is None:
        rclpy.spin_once(node, timeout_sec=0.05)
    for _ in range(20):
        rclpy.spin_once(node, timeout_sec=0.05)
    times = sorted(arrivals.values())
    rate = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
    print(json.dumps({"sent": frames, "received": len(arrivals), "rate_hz": rate}), flush=True)
    node.destroy_node()
    return 0


def main() -> int:
    mode, width, height, frames, rate_hz = sys.argv[1], *map(int, sys.argv[2:5]), float(sys.argv[5])
    rclpy.init()
    try:
        return {"send": send, "receive": receive}[mode](width, height, frames, rate_hz)
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
