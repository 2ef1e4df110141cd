"""Small helpers shared by the nodes: stamps, parameter declaration, images."""

from __future__ import annotations

import dataclasses
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from builtin_interfaces.msg import Time
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.lifecycle import TransitionCallbackReturn
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..change_detection import ChangeDetectorConfig
from ..imaging import DEFAULT_MAX_PIXELS, ImageConversionError, compressed_to_rgb, cv2_to_rgb, image_to_rgb
from ..runtime import BACKENDS, DEFAULT_BACKEND, BackendError

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


class ParameterError(ValueError):
    """Invalid parameter value(s); the message names each parameter, its value and the valid range."""


@dataclass(frozen=True)
class Param:
    """The one definition of a parameter: its default (which fixes the type),
    description and valid values. It gives both the ROS descriptor (rclpy
    enforces type and range on later sets) and the start-up check (rclpy
    checks neither on declared overrides the way a user needs)."""

    default: Any
    description: str
    range: tuple[float, float] | None = None  # inclusive, int or float parameters
    choices: tuple[str, ...] = ()
    read_only: bool = False
    check: Callable[[str, Any], str | None] | None = None  # extra rule: the reason, or None

    def descriptor(self) -> ParameterDescriptor:
        d = ParameterDescriptor(description=self.description, read_only=self.read_only,
                                additional_constraints=" | ".join(self.choices))
        if self.range is not None and isinstance(self.default, float):
            d.floating_point_range = [FloatingPointRange(from_value=float(self.range[0]),
                                                         to_value=float(self.range[1]), step=0.0)]
        elif self.range is not None:
            d.integer_range = [IntegerRange(from_value=int(self.range[0]), to_value=int(self.range[1]), step=1)]
        return d

    def coerce(self, name: str, value: Any) -> Any:
        """The value as the parameter's type; ParameterError with the reason if invalid."""
        d, bounds = self.default, "" if self.range is None else f" in [{self.range[0]}, {self.range[1]}]"
        if isinstance(d, bool):
            ok = isinstance(value, bool)
            want = "true or false"
        elif isinstance(d, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
            want = "an integer" + bounds
        elif isinstance(d, float):  # an integer is accepted: threshold:=1 is an easy slip, not an error
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            value = float(value) if ok else value
            want = "a number" + bounds
        elif isinstance(d, str):
            ok = isinstance(value, str)
            want = "a string"
        else:  # string array; [] arrives as NOT_SET (None) and is kept as [""] (an empty list has no ROS type)
            value = [""] if value is None or (isinstance(value, (list, tuple)) and not value) else value
            ok = isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value)
            value = list(value) if ok else value
            want = "a list of strings"
        if not ok:
            raise ParameterError(f"{name}={value!r} must be {want}")
        reason = self.problem(name, value)
        if reason:
            raise ParameterError(reason)
        return value

    def problem(self, name: str, value: Any) -> str | None:
        """Range, choices and extra rule (the type is already right)."""
        if self.range is not None and not self.range[0] <= value <= self.range[1]:  # NaN fails too
            return f"{name}={value} is outside [{self.range[0]}, {self.range[1]}]"
        if self.choices and value not in self.choices:
            return f"{name}={value!r} must be one of: {', '.join(self.choices)}"
        return self.check(name, value) if self.check is not None else None


def phrase_bank_problem(name: str, value) -> str | None:
    """A phrase bank: non-empty phrases, or [] / [''] for the model's own bank."""
    if list(value) in ([], [""]) or all(t.strip() for t in value):
        return None
    return f"{name}: phrases must be non-empty strings ([] or [''] = the model's bank), got {list(value)!r}"


def text_length_check(limit: int) -> Callable[[str, Any], str | None]:
    """A Param check: a string of at most ``limit`` characters (the state query
    is copied into every SemanticEmbedding: a 1 MB query made 30 MB/s of traffic)."""
    def check(name: str, value) -> str | None:
        return None if len(value) <= limit else f"{name} has {len(value)} characters; at most {limit}"
    return check


def model_dir(value: str) -> str | None:
    """A model_path parameter as a directory: '~' expanded; None = the shipped model."""
    return os.path.expanduser(value.strip()) or None


def bank_value(value) -> list[str] | None:
    """[] and [''] mean "the model's bank" (None); otherwise the phrases."""
    texts = [t for t in (value or []) if t]
    return texts or None


def declare_params(node: Node, table: dict[str, Param]) -> dict:
    """Declare every parameter of ``table``; returns {name: value}.

    Each parameter is first declared untyped to read the value the user gave
    (params file, -p, launch) whatever its type, checked with the table, then
    declared again with its typed descriptor and the checked value. All
    problems are collected and raised as one ParameterError. Later sets: rclpy
    enforces type and range from the descriptor; integers for float
    parameters are converted (pre-set callback), and ``update_problem`` checks
    choices and extra rules."""
    values, problems = {}, []
    for name, spec in table.items():
        raw = node.declare_parameter(name, spec.default, ParameterDescriptor(dynamic_typing=True)).value
        try:
            values[name] = spec.coerce(name, raw)
        except ParameterError as e:
            problems.append(str(e))
            values[name] = spec.default
        node.undeclare_parameter(name)
        node.declare_parameter(name, values[name], spec.descriptor(), ignore_override=True)
    if problems:
        raise ParameterError("invalid parameters: " + "; ".join(problems))

    def ints_to_floats(params):
        return [Parameter(p.name, value=float(p.value))
                if p.name in table and isinstance(table[p.name].default, float) and p.type_ == Parameter.Type.INTEGER
                else p for p in params]

    node.add_pre_set_parameters_callback(ints_to_floats)
    return values


def update_problem(table: dict[str, Param], params) -> str | None:
    """The reason a run-time update is refused (choices, extra rules), or None."""
    for p in params:
        spec = table.get(p.name)
        if spec is not None and p.type_ != Parameter.Type.NOT_SET:
            try:
                spec.coerce(p.name, p.value)
            except ParameterError as e:
                return str(e)
    return None


# ChangeDetectorConfig fields exposed as parameters. The change detector runs
# in decoder_node (events) and in perception_node (when to estimate the
# action); config/perception.yaml sets them once for both.
_CD = ChangeDetectorConfig()
CHANGE_PARAMS: dict[str, Param] = {
    "smoothing": Param(_CD.smoothing, "EMA weight of the newest embedding (1 = no smoothing).", (0.01, 1.0)),
    "threshold": Param(_CD.threshold, "Cosine distance to the current state's embedding that starts a change.",
                       (0.001, 1.99)),  # ChangeDetectorConfig: (0, 2)
    "hysteresis": Param(_CD.hysteresis, "A change is cancelled when the distance falls to threshold - hysteresis.",
                        (0.0, 1.0)),
    "min_dwell_s": Param(_CD.min_dwell_s, "Seconds (camera time) a change must persist before it counts.",
                         (0.0, 60.0)),
    "settle_s": Param(_CD.settle_s, "Seconds the new state must be still before it is decoded.", (0.0, 60.0)),
    "settle_fraction": Param(_CD.settle_fraction, "'Still' = moving less than settle_fraction * threshold.",
                             (0.0, 1.0)),
    "max_settle_s": Param(_CD.max_settle_s, "Decode a confirmed change after this long even if it never settles.",
                          (0.0, 600.0)),
    "max_silence_s": Param(_CD.max_silence_s, "Heartbeat event after this long without a decode; 0 = off.",
                           (0.0, 86400.0)),
}


def change_config(values: dict, current=None) -> ChangeDetectorConfig:
    """A ChangeDetectorConfig from parameter values (over ``current``); ParameterError
    if the combination is invalid (e.g. hysteresis >= threshold)."""
    fields = {k: float(v) for k, v in values.items() if k in CHANGE_PARAMS}
    try:
        return dataclasses.replace(current, **fields) if current is not None else ChangeDetectorConfig(**fields)
    except ValueError as e:
        raise ParameterError(str(e)) from e


def updated_change_config(current, params, names=tuple(CHANGE_PARAMS)):
    """``current`` ChangeDetectorConfig with a parameter update's values for
    ``names`` applied; ValueError (with the reason) if the result is invalid."""
    return change_config({p.name: p.value for p in params if p.name in names}, current)


# Services: requests beyond the queue depth were never answered (rmw default
# depth 10); a deep queue answers bursts, each request in turn.
def service_qos(depth: int) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


# /diagnostics (diagnostic_msgs, the ROS convention that rqt_robot_monitor and
# diagnostic_aggregator read): one status per node, published at 1 Hz.
DIAGNOSTICS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.VOLATILE)
# The inference engine of both nodes (vljepa_ros.runtime; the ONNX ones need no torch).
BACKEND_PARAM = Param(DEFAULT_BACKEND, "Inference engine: 'torch' (the model as trained), 'onnxruntime' or "
                      "'openvino' (the checkpoint's ONNX export, from vljepa-export; exported into the cache on "
                      "first use, which is logged). The ONNX backends run without torch.", choices=BACKENDS,
                      read_only=True)

MODEL_PATH_PARAM = Param("", "Checkpoint directory ('~' expanded); empty = the shipped default model.",
                         read_only=True)
# Managed (lifecycle) nodes: perception_node and decoder_node load their model
# in configure and take input only while active.
AUTOSTART_PARAM = Param(True, "Configure and activate at start-up (model loaded and warmed up, inputs subscribed); "
                        "false: stay unconfigured for a lifecycle manager (`ros2 lifecycle set <node> configure`, "
                        "then `activate`).", read_only=True)


class ReleasingTransitions:
    """What both managed nodes share: a failed configure's report, and the
    transitions: deactivate drops the inputs (``_unsubscribe``), cleanup,
    shutdown and a transition that raised drop the model too (``_release``);
    configure and activate are each node's own."""

    def configure_failed(self, model_path: str, error: Exception) -> TransitionCallbackReturn:
        """A configure that could not load the model: the reason kept in
        ``configure_error`` (autostart raises it: one FATAL line) or logged."""
        known = isinstance(error, (BackendError, ValueError))
        reason = str(error) if known else f"{type(error).__name__}: {error}"
        self.configure_error = f"cannot load the model (model_path={model_path!r}): {reason}"
        if not self.autostarting:
            self.get_logger().error(self.configure_error)
        return TransitionCallbackReturn.FAILURE

    def on_deactivate(self, state) -> TransitionCallbackReturn:
        self._unsubscribe()
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state) -> TransitionCallbackReturn:
        self._release()  # back to unconfigured with nothing left running
        return TransitionCallbackReturn.SUCCESS


def autostart(node, enabled: bool) -> None:
    """Bring a managed node to active now, or leave it unconfigured. A
    configure that fails raises RuntimeError with the node's reason
    (``node.configure_error``): at start-up that is a FATAL line and exit 2."""
    if not enabled:
        node.get_logger().info(f"autostart is false: unconfigured; `ros2 lifecycle set "
                               f"{node.get_fully_qualified_name()} configure`, then `activate`")
        return
    node.autostarting = True  # a failed configure is then the one FATAL line of run_node, not an ERROR too
    try:
        configured = node.trigger_configure()
    finally:
        node.autostarting = False
    if configured != TransitionCallbackReturn.SUCCESS:
        raise RuntimeError(node.configure_error or "configure failed")
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        raise RuntimeError("activate failed")


def lifecycle_state(node) -> str:
    """The node's lifecycle state label ('unconfigured', 'inactive', 'active', ...):
    what the node's own ~/get_state service answers (rclpy has no public getter)."""
    return node._state_machine.current_state[1]


DIAGNOSTIC_PARAMS: dict[str, Param] = {
    "stale_after_s": Param(5.0, "/diagnostics: WARN when no input arrived for this long (wall time).",
                           (0.1, 3600.0)),
    "latency_budget_ms": Param(200.0, "/diagnostics: WARN when the p95 latency of the last second exceeds this.",
                               (1.0, 60_000.0)),
}


def diagnostic_array(node: Node, name: str, hardware_id: str, level: int, message: str, values: dict):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    status = DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=hardware_id,
                              values=[KeyValue(key=k, value=f"{v:.3f}" if isinstance(v, float) else str(v))
                                      for k, v in values.items()])
    array = DiagnosticArray(status=[status])
    array.header.stamp = node.get_clock().now().to_msg()
    return array


def make_image_converter(prefer_cv_bridge: bool, max_pixels=lambda: DEFAULT_MAX_PIXELS):
    """msg -> RGB uint8 (H,W,3). cv_bridge where installed (ROS machines), the
    project's own conversion otherwise; both give the same array. ``max_pixels()``
    is the current cap (a parameter that may change at run time)."""
    bridge = None
    if prefer_cv_bridge:
        try:
            from cv_bridge import CvBridge  # noqa: PLC0415 - optional dependency

            bridge = CvBridge()
        except ImportError:
            bridge = None

    def convert_raw(msg) -> np.ndarray:
        if bridge is not None:
            if msg.height * msg.width > max_pixels():  # checked before cv_bridge copies the buffer
                raise ImageConversionError(f"image of {msg.width}x{msg.height} pixels is larger than "
                                           f"max_pixels={max_pixels()}")
            try:
                array = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
            except Exception as e:  # cv_bridge raises its own CvBridgeError types
                raise ImageConversionError(f"cv_bridge: {e}") from e
            return cv2_to_rgb(array, msg.encoding, max_pixels=max_pixels())
        return image_to_rgb(msg.encoding, msg.height, msg.width, msg.step, msg.data, bool(msg.is_bigendian),
                            max_pixels=max_pixels())

    def convert_compressed(msg) -> np.ndarray:
        return compressed_to_rgb(msg.format, msg.data, max_pixels=max_pixels())

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
