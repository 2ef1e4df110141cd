"""Play the camera images of a rosbag2 MCAP file, for machines without the
ros2 CLI (`ros2 bag play` does this, and more, on a ROS machine).

    python -m vljepa_ros.ros.bag_player episode7.mcap [--rate 1.0] [--clock] [--topic /camera/image_raw]

Messages keep their recorded header stamps; with --clock the recorded time is
published on /clock so nodes with use_sim_time follow the bag.
"""

from __future__ import annotations

import argparse
import sys
import time

import rclpy
from builtin_interfaces.msg import Time
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from ..data.bag import read_images
from ..imaging import rgb_to_image_fields


class BagPlayer(Node):
    def __init__(self, path: str, topic: str = "/camera/image_raw", rate: float = 1.0, clock: bool = False):
        super().__init__("vljepa_bag_player")
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        self.path, self.rate = path, rate
        self.pub = self.create_publisher(Image, topic, QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE))
        self.clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock

            self.clock_pub = self.create_publisher(Clock, "/clock", 10)
            self._Clock = Clock
        self.published = 0

    def play(self) -> int:
        start_wall, start_log = time.monotonic(), None
        for item in read_images(self.path):
            if start_log is None:
                start_log = item.log_time_ns
            delay = (item.log_time_ns - start_log) / 1e9 / self.rate - (time.monotonic() - start_wall)
            if delay > 0:
                time.sleep(delay)
            stamp = Time(sec=item.stamp_ns // 1_000_000_000, nanosec=item.stamp_ns % 1_000_000_000)
            if self.clock_pub is not None:
                self.clock_pub.publish(self._Clock(clock=stamp))
            h, w, step, data = rgb_to_image_fields(item.rgb, "rgb8")
            msg = Image(height=h, width=w, step=step, encoding="rgb8", data=data)
            msg.header.stamp, msg.header.frame_id = stamp, item.frame_id
            self.pub.publish(msg)
            self.published += 1
        return self.published


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vljepa-bag-player", description=__doc__.split("\n\n")[0])
    parser.add_argument("bag")
    parser.add_argument("--topic", default="/camera/image_raw")
    parser.add_argument("--rate", type=float, default=1.0)
    parser.add_argument("--clock", action="store_true")
    parser.add_argument("--wait-subscribers", type=float, default=5.0, help="seconds to wait for a subscriber")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    try:
        player = BagPlayer(args.bag, args.topic, args.rate, args.clock)
        deadline = time.monotonic() + args.wait_subscribers
        while player.pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        n = player.play()
        print(f"played {n} images from {args.bag}")
        player.destroy_node()
    except ValueError as e:
        print(f"vljepa-bag-player: {e}", file=sys.stderr)
        return 2
    finally:
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
