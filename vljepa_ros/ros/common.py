"""Small helpers shared by the nodes: stamps, parameter declaration, images."""

from __future__ import annotations

import dataclasses
from collections import OrderedDict

import numpy as np
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..imaging import ImageConversionError, compressed_to_rgb, cv2_to_rgb, image_to_rgb

# Camera input: best effort, keep only the newest frame (never fall behind).
SENSOR_QOS_LATEST = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                               reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)
# Outputs: reliable, a short queue (planners must not miss an event).
RELIABLE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=20,
                          reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)


def stamp_to_s(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class StampBook:
    """Exact builtin_interfaces/Time for recent float stamps (the core works in
    float seconds; messages must carry the camera's exact stamps)."""

    def __init__(self, capacity: int = 512):
        self._book: OrderedDict[float, Time] = OrderedDict()
        self._capacity = capacity

    def add(self, stamp: Time) -> float:
        s = stamp_to_s(stamp)
        self._book[s] = Time(sec=stamp.sec, nanosec=stamp.nanosec)
        while len(self._book) > self._capacity:
            self._book.popitem(last=False)
        return s

    def get(self, s: float | None) -> Time:
        if s is None:
            return Time()
        t = self._book.get(s)
        if t is None:  # older than the book: rebuild from the float (sub-microsecond error)
            sec = int(s)
            t = Time(sec=sec, nanosec=min(999_999_999, int(round((s - sec) * 1e9))))
        return t

    def clear(self) -> None:
        self._book.clear()


def declare(node: Node, name: str, default, description: str, *, read_only: bool = False,
            int_range: tuple[int, int] | None = None, float_range: tuple[float, float] | None = None,
            additional: str = ""):
    """declare_parameter with a descriptor (ranges are enforced by rclpy on set)."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only,
                                     additional_constraints=additional)
    if int_range is not None:
        descriptor.integer_range = [IntegerRange(from_value=int_range[0], to_value=int_range[1], step=1)]
    if float_range is not None:
        descriptor.floating_point_range = [FloatingPointRange(from_value=float_range[0], to_value=float_range[1],
                                                              step=0.0)]
    return node.declare_parameter(name, default, descriptor).value


def check_range(name: str, value, low, high) -> str | None:
    """The reason a start-up value is out of range (rclpy checks only later sets)."""
    if not low <= value <= high:
        return f"{name}={value} is outside [{low}, {high}]"
    return None


# ChangeDetectorConfig fields exposed as parameters: (range, description). The
# change detector runs in decoder_node (events) and in perception_node (when to
# estimate the action); config/perception.yaml sets them once for both.
CHANGE_PARAMS = {
    "smoothing": ((0.01, 1.0), "EMA weight of the newest embedding (1 = no smoothing)."),
    "threshold": ((0.001, 2.0), "Cosine distance to the current state's embedding that starts a change."),
    "hysteresis": ((0.0, 1.0), "A change is cancelled when the distance falls to threshold - hysteresis."),
    "min_dwell_s": ((0.0, 60.0), "Seconds (camera time) a change must persist before it counts."),
    "settle_s": ((0.0, 60.0), "Seconds the new state must be still before it is decoded."),
    "settle_fraction": ((0.0, 1.0), "'Still' = moving less than settle_fraction * threshold."),
    "max_settle_s": ((0.0, 600.0), "Decode a confirmed change after this long even if it never settles."),
    "max_silence_s": ((0.0, 86400.0), "Heartbeat event after this long without a decode; 0 = off."),
}


def declare_change_detector(node: Node, names=tuple(CHANGE_PARAMS)) -> tuple[dict, list[str]]:
    """Declare the change-detector parameters; returns (values, start-up range problems)."""
    from ..change_detection import ChangeDetectorConfig

    defaults = ChangeDetectorConfig()
    values = {n: declare(node, n, float(getattr(defaults, n)), CHANGE_PARAMS[n][1], float_range=CHANGE_PARAMS[n][0])
              for n in names}
    return values, [p for p in (check_range(n, v, *CHANGE_PARAMS[n][0]) for n, v in values.items()) if p]


def updated_change_config(current, params, names=tuple(CHANGE_PARAMS)):
    """``current`` ChangeDetectorConfig with a parameter update's values for
    ``names`` applied; ValueError (with the reason) if the result is invalid."""
    return dataclasses.replace(current, **{p.name: float(p.value) for p in params if p.name in names})


def make_image_converter(prefer_cv_bridge: bool):
    """msg -> RGB uint8 (H,W,3). cv_bridge where installed (ROS machines), the
    project's own conversion otherwise; both give the same array."""
    bridge = None
    if prefer_cv_bridge:
        try:
            from cv_bridge import CvBridge  # noqa: PLC0415 - optional dependency

            bridge = CvBridge()
        except ImportError:
            bridge = None

    def convert_raw(msg) -> np.ndarray:
        if bridge is not None:
            try:
                array = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
            except Exception as e:  # cv_bridge raises its own CvBridgeError types
                raise ImageConversionError(f"cv_bridge: {e}") from e
            return cv2_to_rgb(array, msg.encoding)
        return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian))

    def convert_compressed(msg) -> np.ndarray:
        return compressed_to_rgb(msg.format, msg.data)

    return convert_raw, convert_compressed, bridge is not None


def run_node(node_class, name: str, args=None) -> None:
    """init, build the node, spin until Ctrl-C / shutdown, clean up. A node that
    rejects its parameters or model at start-up (ValueError / RuntimeError)
    logs the reason as FATAL and exits with status 2. One executor thread:
    rclpy's MultiThreadedExecutor polls in Python and starves other threads of
    the GIL (docs/design.md); long work runs on the node's own threads."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except (ValueError, RuntimeError) as e:
        rclpy.logging.get_logger(name).fatal(str(e))
        raise SystemExit(2) from e
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
