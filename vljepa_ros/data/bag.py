"""rosbag2 (MCAP) files without ROS: record simulated episodes, read camera
images back. Uses the maintained `mcap` / `mcap-ros2-support` packages; only
the message definitions below are written here (rosbag2 stores each schema as
the concatenated .msg text of the type and its dependencies).

    python -m vljepa_ros.data.bag record --episode-seed 7 --split test --out episode7.mcap
    ros2 bag play episode7.mcap --clock      # on a ROS machine
    python -m vljepa_ros.ros.bag_player episode7.mcap   # without the ros2 CLI
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..imaging import image_to_rgb, rgb_to_image_fields
from ..sim.camera import sim_stamp_ns

_SEP = "=" * 80 + "\n"
_TIME = "int32 sec\nuint32 nanosec\n"
_HEADER = "builtin_interfaces/Time stamp\nstring frame_id\n"
IMAGE_MSGDEF = (
    "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
    "uint8 is_bigendian\nuint32 step\nuint8[] data\n"
    + _SEP + "MSG: std_msgs/Header\n" + _HEADER + _SEP + "MSG: builtin_interfaces/Time\n" + _TIME
)
STRING_MSGDEF = "string data\n"


@dataclass
class BagImage:
    stamp_ns: int
    frame_id: str
    rgb: np.ndarray
    log_time_ns: int


def record_episode(path: str, seed: int, split: str = "test", image_size: int = 224, max_frames: int = 0,
                   topic: str = "/camera/image_raw", frame_id: str = "sim_camera_optical_frame") -> int:
    """Render a scripted episode into an MCAP bag (images + ground truth JSON);
    stamps are the episode time from the sim camera's epoch. Returns frames written."""
    import json

    from mcap_ros2.writer import Writer

    from ..sim.episodes import EpisodeScript
    from ..sim.ground_truth import truth_record
    from ..sim.world import TabletopWorld

    script = EpisodeScript.generate(seed, split)
    world = TabletopWorld()
    n = 0
    with open(path, "wb") as f:
        writer = Writer(f)
        image_schema = writer.register_msgdef("sensor_msgs/msg/Image", IMAGE_MSGDEF)
        truth_schema = writer.register_msgdef("std_msgs/msg/String", STRING_MSGDEF)
        for i, t, rgb, truth in script.frames(world, image_size, image_size):
            if max_frames and i >= max_frames:
                break
            ns = sim_stamp_ns(t)
            stamp = {"sec": ns // 1_000_000_000, "nanosec": ns % 1_000_000_000}
            h, w, step, data = rgb_to_image_fields(rgb, "rgb8")
            writer.write_message(topic, image_schema, {
                "header": {"stamp": stamp, "frame_id": frame_id}, "height": h, "width": w, "encoding": "rgb8",
                "is_bigendian": 0, "step": step, "data": data}, log_time=ns, publish_time=ns, sequence=i)
            writer.write_message("/camera/ground_truth", truth_schema, {  # the sim camera's record
                "data": json.dumps(truth_record(script, truth, ns, frame_id))}, log_time=ns, publish_time=ns, sequence=i)
            n += 1
        writer.finish()
    world.close()
    return n


def read_images(path: str, topic: str = "/camera/image_raw") -> Iterator[BagImage]:
    """Camera images of a bag in log-time order, as RGB arrays."""
    from mcap_ros2.reader import read_ros2_messages

    for m in read_ros2_messages(path, topics=[topic]):
        msg = m.ros_msg
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        rgb = image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, bytes(msg.data), bool(msg.is_bigendian))
        yield BagImage(stamp, msg.header.frame_id, rgb, m.log_time_ns)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vljepa-bag", description="Record simulated episodes as rosbag2 MCAP files.")
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="render a scripted episode into an MCAP bag")
    rec.add_argument("--episode-seed", type=int, default=7)
    rec.add_argument("--split", default="test", choices=("train", "val", "test"))
    rec.add_argument("--image-size", type=int, default=224)
    rec.add_argument("--max-frames", type=int, default=0)
    rec.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    n = record_episode(args.out, args.episode_seed, args.split, args.image_size, args.max_frames)
    print(f"wrote {args.out}: {n} frames on /camera/image_raw (+ /camera/ground_truth)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
