"""sim_camera: plays scripted episodes of the MuJoCo tabletop as a ROS camera.

A thin adapter around the ROS-free simulation (:mod:`vljepa_ros.sim`): the
episode script, the world and the renderer live there; this node only paces
frames, fills messages and handles parameters.

Publications (relative names, so a namespace or remap moves them)::

    camera/image_raw     sensor_msgs/Image       rgb8, image_size x image_size
    camera/camera_info   sensor_msgs/CameraInfo  pinhole from the MuJoCo camera's fovy
    camera/ground_truth  std_msgs/String         one JSON object per frame (see below)
    /clock               rosgraph_msgs/Clock     only with time_source:=sim
    /tf_static           world -> frame_id       only when tf2_ros is importable

Ground truth JSON (one per image, same stamp as the image's header)::

    {"seed", "split", "episode", "frame", "n_frames", "t",
     "stamp": {"sec", "nanosec"}, "frame_id", "caption", "state",
     "arm_moving", "transition_id", "last_transition_id",
     "event": null | {"id", "kind", "action", "action_struct", "frame_start", "frame_end"},
     "camera_pose": {"frame_id": "world", "position": [x, y, z],
                     "orientation": [x, y, z, w]}}

``event`` is set only on the frame where an event starts. ``caption`` is
:func:`vljepa_ros.sim.captions.state_caption` of the frame's state.

Threading: MuJoCo's EGL context must stay in the thread that created it, and
an executor (multi-threaded in the in-process bringup) may run a timer callback
on any of its threads. The world is therefore created, rendered and closed on
one dedicated worker thread; the timer callback hands it "next frame" and
waits for the pixels, so rendering is still paced by (and blocks) the timer.
A slow renderer makes frames late, never skipped.
"""

from __future__ import annotations

import array
import json
import math
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import rclpy
from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    SetParametersResult,
)
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import (
    InvalidParameterTypeException,
    InvalidParameterValueException,
)
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import (
    QoSDurabilityPolicy,
    QoSHistoryPolicy,
    QoSProfile,
    QoSReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from vljepa_ros.imaging import rgb_to_image_fields
from vljepa_ros.sim.camera import camera_pose

try:  # rosgraph_msgs ships with every ROS 2 install, but stay explicit
    from rosgraph_msgs.msg import Clock as ClockMsg
except ImportError:  # pragma: no cover - depends on the install
    ClockMsg = None

SPLITS = ("train", "val", "test")
TIME_SOURCES = ("ros", "sim")
# Simulated time = SIM_EPOCH_S + seconds since the first episode started.
# Not zero: ROS time 0 means "no clock received yet" for use_sim_time nodes.
SIM_EPOCH_S = 1_000_000_000
MAX_FPS = 60.0
NODE_NAME = "sim_camera"


class ConfigurationError(ValueError):
    """The node cannot run with these parameters / this installation (reason in the message)."""


# --------------------------------------------------------------------------
# Pure helpers (no rclpy): camera model of the MuJoCo free camera.
# --------------------------------------------------------------------------
def pinhole_intrinsics(fovy_deg: float, width: int, height: int) -> tuple[float, float, float, float]:
    """(fx, fy, cx, cy) of MuJoCo's camera: ``fovy`` is the vertical field of
    view, pixels are square. cx, cy use the ROS/OpenCV convention that pixel
    (0, 0) is the *centre* of the first pixel, so the optical axis hits
    ((w - 1) / 2, (h - 1) / 2)."""
    fy = (height / 2.0) / math.tan(math.radians(fovy_deg) / 2.0)
    return fy, fy, (width - 1) / 2.0, (height - 1) / 2.0


# camera_pose: the simulator's camera pose, defined once in vljepa_ros.sim.camera (the
# memory evaluation uses it without ROS).


def _descriptor(description: str, *, read_only: bool = False, float_range=None,
                int_range=None, constraints: str = "") -> ParameterDescriptor:
    d = ParameterDescriptor(description=description, read_only=read_only,
                            additional_constraints=constraints)
    if float_range is not None:
        d.floating_point_range = [FloatingPointRange(
            from_value=float(float_range[0]), to_value=float(float_range[1]), step=0.0)]
    if int_range is not None:
        d.integer_range = [IntegerRange(
            from_value=int(int_range[0]), to_value=int(int_range[1]), step=1)]
    return d


class SimCameraNode(Node):
    """Publishes a scripted MuJoCo episode as a camera (see the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        # Registered before declaring, so invalid start-up values (launch
        # file, --ros-args -p) are rejected with the same reasons.
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._declare_parameters()
        p = {name: self.get_parameter(name).value for name in (
            "episode_seed", "split", "fps", "image_size", "loop", "start_delay_s",
            "wait_for_subscribers", "max_frames", "time_source", "frame_id", "reliable", "publish_tf",
            "world_frame_id")}
        self._seed = int(p["episode_seed"])
        self._split = str(p["split"])
        self._fps = float(p["fps"])
        self._episode_fps = self._fps  # content rate, fixed for the node's life
        self._size = int(p["image_size"])
        self._loop = bool(p["loop"])
        self._start_delay = float(p["start_delay_s"])
        self._wait_for_subscribers = int(p["wait_for_subscribers"])
        self._max_frames = int(p["max_frames"])
        self._time_source = str(p["time_source"])
        self._frame_id = str(p["frame_id"])
        self._world_frame_id = str(p["world_frame_id"])
        if self._time_source == "sim" and ClockMsg is None:
            raise ConfigurationError(
                "time_source 'sim' needs rosgraph_msgs (rosgraph_msgs/Clock) to publish /clock, "
                "and it is not importable: install ros-<distro>-rosgraph-msgs or use time_source:=ros")

        # The ROS-free simulation: the episode script is cheap and pure.
        from vljepa_ros.sim.episodes import EpisodeConfig, EpisodeScript

        self._EpisodeScript = EpisodeScript
        self._config = EpisodeConfig(fps=self._episode_fps)
        self._script = EpisodeScript.generate(self._seed, self._split, self._config)
        self._episodes_played = 0
        self._time_base_s = 0.0  # sim time at the start of the current episode

        # QoS: reliable keep-last-5 by default (a SensorDataQoS subscriber is
        # compatible with it); best effort = the usual sensor-data profile.
        if bool(p["reliable"]):
            image_qos = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=5,
                                   reliability=QoSReliabilityPolicy.RELIABLE,
                                   durability=QoSDurabilityPolicy.VOLATILE)
        else:
            image_qos = qos_profile_sensor_data
        truth_qos = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=50,
                               reliability=QoSReliabilityPolicy.RELIABLE,
                               durability=QoSDurabilityPolicy.VOLATILE)
        self._image_pub = self.create_publisher(Image, "camera/image_raw", image_qos)
        self._info_pub = self.create_publisher(CameraInfo, "camera/camera_info", image_qos)
        self._truth_pub = self.create_publisher(String, "camera/ground_truth", truth_qos)
        self._clock_pub = None
        if self._time_source == "sim":
            # Reliable is compatible with rclpy's/rclcpp's best-effort /clock subscription.
            self._clock_pub = self.create_publisher(
                ClockMsg, "/clock", QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE))

        self._tf = None
        if bool(p["publish_tf"]):
            try:
                from tf2_ros import StaticTransformBroadcaster
            except ImportError:
                self.get_logger().info(
                    "tf2_ros is not installed: the camera pose is not published as TF "
                    "(it is in camera/ground_truth 'camera_pose')")
            else:
                self._tf = StaticTransformBroadcaster(self)

        # State shared between the timer (executor thread) and the render thread.
        self._done = threading.Event()
        self._frames_iter: Iterator | None = None
        self._episode_frames = 0
        self._world = None
        self._world_error: BaseException | None = None
        self._camera_info: CameraInfo | None = None
        self._render_errors = 0
        self._published = 0
        self._run_started: float | None = None
        self._rate_window: list[float] = []
        self._render = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim_camera_render")
        self._render.submit(self._create_world)  # overlaps with start_delay_s

        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._t0 = time.monotonic()
        self._timer_group = MutuallyExclusiveCallbackGroup()
        # A steady clock: the pacing must not depend on /clock, which this
        # node may itself publish.
        self._timer = self.create_timer(1.0 / self._fps, self._on_timer,
                                        callback_group=self._timer_group, clock=self._steady)
        self.get_logger().info(
            f"episode seed={self._seed} split={self._split}: {self._script.n_frames} frames "
            f"({self._script.n_frames / self._episode_fps:.1f} s), {len(self._script.events)} events; "
            f"{self._size}x{self._size} at {self._fps:g} fps, time_source={self._time_source}, "
            f"first frame in {self._start_delay:g} s"
            + (f" once {self._wait_for_subscribers} subscriber(s) listen" if self._wait_for_subscribers else ""))

    # ------------------------------------------------------------ parameters
    def _declare_parameters(self) -> None:
        self.declare_parameter("episode_seed", 0, _descriptor(
            "Seed of the scripted episode (EpisodeScript.generate); with loop, the next "
            "episode uses seed + 1.", read_only=True, int_range=(0, 2**31 - 1)))
        self.declare_parameter("split", "test", _descriptor(
            "Dataset split the episode is drawn from: train, val or test (held-out "
            "compositions and camera poses).", read_only=True, constraints="one of: train, val, test"))
        self.declare_parameter("fps", 15.0, _descriptor(
            "Publication rate (frames/s). The episode content is generated at the start-up "
            "value; changing it at run time changes the playback speed.",
            float_range=(0.0, MAX_FPS), constraints="0 < fps <= 60"))
        self.declare_parameter("image_size", 224, _descriptor(
            "Width and height of the square image (px).", read_only=True, int_range=(32, 1024)))
        self.declare_parameter("loop", False, _descriptor(
            "After the episode ends: false = log once and stop publishing; true = play the "
            "next seed."))
        self.declare_parameter("start_delay_s", 1.0, _descriptor(
            "Wait before the first frame so subscribers can connect (s).",
            read_only=True, float_range=(0.0, 60.0)))
        self.declare_parameter("wait_for_subscribers", 0, _descriptor(
            "The episode starts only once camera/image_raw has this many subscribers (after "
            "start_delay_s): a perception node that subscribes after loading its model misses "
            "no frame. 0 = do not wait.", read_only=True, int_range=(0, 100)))
        self.declare_parameter("max_frames", 0, _descriptor(
            "Frames per episode to publish; 0 = the whole episode.", int_range=(0, 1_000_000)))
        self.declare_parameter("time_source", "ros", _descriptor(
            "Stamps: 'ros' = the node clock at publication (a live camera); 'sim' = the "
            f"episode time + {SIM_EPOCH_S} s, also published on /clock for use_sim_time nodes.",
            read_only=True, constraints="one of: ros, sim"))
        self.declare_parameter("frame_id", "sim_camera_optical_frame", _descriptor(
            "header.frame_id of images and camera info (optical frame: x right, y down, "
            "z forward).", read_only=True, constraints="non-empty"))
        self.declare_parameter("reliable", True, _descriptor(
            "Publish images and camera info reliable keep-last-5 (true) or best-effort "
            "SensorDataQoS (false).", read_only=True))
        self.declare_parameter("publish_tf", True, _descriptor(
            "Publish world_frame_id -> frame_id on /tf_static (needs tf2_ros; skipped with a "
            "log line when it is not installed).", read_only=True))
        self.declare_parameter("world_frame_id", "world", _descriptor(
            "Parent frame of the camera pose (the MuJoCo world frame).", read_only=True,
            constraints="non-empty"))

    def _on_set_parameters(self, params) -> SetParametersResult:
        for prm in params:
            reason = self._check(prm.name, prm.value)
            if reason:
                return SetParametersResult(successful=False, reason=f"{prm.name}: {reason}")
        # All valid: apply the ones that matter at run time.
        for prm in params:
            if prm.name == "fps" and hasattr(self, "_timer"):
                self._fps = float(prm.value)
                self._timer.timer_period_ns = int(1e9 / self._fps)
                self._rate_window.clear()
                self.get_logger().info(f"fps set to {self._fps:g}")
            elif prm.name == "loop" and hasattr(self, "_timer"):
                self._loop = bool(prm.value)
            elif prm.name == "max_frames" and hasattr(self, "_timer"):
                self._max_frames = int(prm.value)
        return SetParametersResult(successful=True)

    @staticmethod
    def _check(name: str, value) -> str:
        """'' when valid, else the reason (ranges are also in the descriptors)."""
        if name == "fps" and isinstance(value, (int, float)) and not 0.0 < value <= MAX_FPS:
            return f"must be in (0, {MAX_FPS:g}] frames/s, got {value}"
        if name == "split" and value not in SPLITS:
            return f"must be one of {', '.join(SPLITS)}, got {value!r}"
        if name == "time_source" and value not in TIME_SOURCES:
            return f"must be one of {', '.join(TIME_SOURCES)}, got {value!r}"
        if name in ("frame_id", "world_frame_id") and isinstance(value, str) and not value.strip():
            return "must not be empty"
        return ""

    # ----------------------------------------------------------- public API
    @property
    def done(self) -> bool:
        """True once the (last) episode has been published (never with loop)."""
        return self._done.is_set()

    @property
    def done_event(self) -> threading.Event:
        """Set when the episode is finished; ``done_event.wait(timeout)`` for bringups."""
        return self._done

    @property
    def script(self):
        """The :class:`~vljepa_ros.sim.episodes.EpisodeScript` being played."""
        return self._script

    @property
    def frames_published(self) -> int:
        return self._published

    def stamp_of(self, t: float) -> Time:
        """Sim-time stamp of episode time ``t`` in the current episode (time_source sim)."""
        # integer nanoseconds: a double of ~1e18 ns would round to ~128 ns
        ns = SIM_EPOCH_S * 1_000_000_000 + int(round((self._time_base_s + t) * 1e9))
        return Time(nanoseconds=ns, clock_type=ClockType.ROS_TIME)

    # ------------------------------------------------------- render thread
    def _create_world(self) -> None:
        try:
            from vljepa_ros.sim.world import TabletopWorld

            self._world = TabletopWorld()
            self._camera_info = self._make_camera_info(float(self._world.model.vis.global_.fovy))
        except BaseException as exc:  # noqa: BLE001 - reported by the timer
            self._world_error = exc

    def _next_frame(self):
        """Next (i, t, rgb, truth) of the current episode, or None at its end."""
        if self._world is None:
            return None
        if self._frames_iter is None:
            self._frames_iter = self._script.frames(self._world, self._size, self._size)
            self._episode_frames = 0
        if self._max_frames and self._episode_frames >= self._max_frames:
            return None
        try:
            item = next(self._frames_iter)
        except StopIteration:
            return None
        self._episode_frames += 1
        return item

    def _close_world(self) -> None:
        if self._frames_iter is not None:
            self._frames_iter.close()
            self._frames_iter = None
        if self._world is not None:
            self._world.close()
            self._world = None

    # ---------------------------------------------------------------- timer
    def _on_timer(self) -> None:
        if self._done.is_set():
            return
        if time.monotonic() - self._t0 < self._start_delay:
            return
        if self._published == 0 and self._image_pub.get_subscription_count() < self._wait_for_subscribers:
            self.get_logger().info(f"waiting for {self._wait_for_subscribers} subscriber(s) of "
                                   f"{self._image_pub.topic_name}", throttle_duration_sec=5.0)
            return
        try:
            item = self._render.submit(self._next_frame).result()
        except Exception as exc:  # noqa: BLE001 - a bad frame never kills the node
            self._render_errors += 1
            self.get_logger().error(
                f"rendering frame {self._episode_frames} failed ({self._render_errors} errors so far): "
                f"{type(exc).__name__}: {exc}", throttle_duration_sec=5.0)
            return
        if self._world_error is not None:
            self.get_logger().fatal(
                f"cannot create the MuJoCo world (MUJOCO_GL, EGL/OSMesa?): "
                f"{type(self._world_error).__name__}: {self._world_error}; not publishing")
            self._finish()
            return
        if item is None:
            if self._world is None:  # still being created
                self.get_logger().info("waiting for the MuJoCo world", throttle_duration_sec=5.0)
                return
            self._end_of_episode()
            return
        self._publish(*item)

    def _publish(self, i: int, t: float, rgb: np.ndarray, truth) -> None:
        if self._time_source == "sim":
            stamp = self.stamp_of(t).to_msg()
            clock = ClockMsg()
            clock.clock = stamp
            self._clock_pub.publish(clock)  # first, so stamps are never ahead of /clock
        else:
            stamp = self.get_clock().now().to_msg()
        if i == 0 or self._published == 0:
            self._send_tf(stamp)

        height, width, step, data = rgb_to_image_fields(rgb, "rgb8")
        img = Image()
        img.header.stamp = stamp
        img.header.frame_id = self._frame_id
        img.height, img.width, img.step = height, width, step
        img.encoding = "rgb8"
        img.is_bigendian = 0
        img.data = array.array("B", data)
        info = self._camera_info
        info.header.stamp = stamp
        info.header.frame_id = self._frame_id
        self._image_pub.publish(img)
        self._info_pub.publish(info)
        self._truth_pub.publish(String(data=json.dumps(self._truth_json(i, t, truth, stamp))))

        self._published += 1
        now = time.monotonic()
        if self._run_started is None:
            self._run_started = now
        self._rate_window.append(now)
        if len(self._rate_window) > 4 * max(1, int(self._fps)):
            del self._rate_window[0]
        if len(self._rate_window) >= max(3, int(self._fps)):
            span = self._rate_window[-1] - self._rate_window[0]
            rate = (len(self._rate_window) - 1) / span if span > 0 else float("inf")
            if rate < 0.9 * self._fps:
                self.get_logger().warn(
                    f"rendering is slower than fps: {rate:.1f} frames/s achieved, {self._fps:g} "
                    f"requested; frames are published late, none skipped", throttle_duration_sec=10.0)
            else:
                self.get_logger().info(
                    f"{self._published} frames published, {rate:.1f} frames/s", throttle_duration_sec=10.0)

    def _truth_json(self, i: int, t: float, truth, stamp) -> dict:
        from vljepa_ros.sim.captions import action_text, state_caption

        state = truth.state()
        event = None
        for e in self._script.events:
            if e.frame_start == i:
                event = {"id": e.id, "kind": e.kind, "action": action_text(e.action()),
                         "action_struct": e.action(), "frame_start": e.frame_start,
                         "frame_end": e.frame_end}
                break
        p = self._script.params
        pos, quat = camera_pose(p.cam_azimuth, p.cam_elevation, p.cam_distance, p.cam_lookat)
        return {
            "seed": self._script.seed,
            "split": self._script.split,
            "episode": f"{self._script.split}_{self._script.seed:05d}",
            "frame": int(i),
            "n_frames": int(self._script.n_frames),
            "t": float(t),
            "stamp": {"sec": int(stamp.sec), "nanosec": int(stamp.nanosec)},
            "frame_id": self._frame_id,
            "caption": state_caption(state),
            "state": state,
            "arm_moving": bool(truth.arm_moving),
            "transition_id": truth.transition_id,
            "last_transition_id": truth.last_transition_id,
            "event": event,
            "camera_pose": {"frame_id": self._world_frame_id,
                            "position": [float(v) for v in pos],
                            "orientation": [float(v) for v in quat]},
        }

    def _send_tf(self, stamp) -> None:
        if self._tf is None:
            return
        from geometry_msgs.msg import TransformStamped

        p = self._script.params
        pos, quat = camera_pose(p.cam_azimuth, p.cam_elevation, p.cam_distance, p.cam_lookat)
        tf = TransformStamped()
        tf.header.stamp = stamp
        tf.header.frame_id = self._world_frame_id
        tf.child_frame_id = self._frame_id
        tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = (
            float(v) for v in pos)
        (tf.transform.rotation.x, tf.transform.rotation.y, tf.transform.rotation.z,
         tf.transform.rotation.w) = (float(v) for v in quat)
        self._tf.sendTransform(tf)

    def _make_camera_info(self, fovy_deg: float) -> CameraInfo:
        fx, fy, cx, cy = pinhole_intrinsics(fovy_deg, self._size, self._size)
        info = CameraInfo()
        info.height = info.width = self._size
        info.distortion_model = "plumb_bob"
        info.d = [0.0] * 5
        info.k = [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    def _end_of_episode(self) -> None:
        n = self._episode_frames
        elapsed = (self._rate_window[-1] - self._run_started) if self._run_started and self._rate_window else 0.0
        rate = (self._published - 1) / elapsed if elapsed > 0 else float("nan")
        self.get_logger().info(
            f"episode seed={self._script.seed} split={self._script.split} finished: {n} frames "
            f"published ({self._published} in total, {rate:.1f} frames/s achieved, "
            f"{self._fps:g} requested)")
        self._episodes_played += 1
        if not self._loop:
            self.get_logger().info("loop is false: no more frames")
            self._finish()
            return
        self._time_base_s += n / self._episode_fps  # /clock keeps going forward
        seed = self._script.seed + 1
        self._script = self._EpisodeScript.generate(seed, self._split, self._config)
        self._render.submit(self._reset_episode).result()
        self.get_logger().info(
            f"next episode: seed={seed}, {self._script.n_frames} frames, "
            f"{len(self._script.events)} events")

    def _reset_episode(self) -> None:
        if self._frames_iter is not None:
            self._frames_iter.close()
        self._frames_iter = None
        self._episode_frames = 0

    def _finish(self) -> None:
        self._timer.cancel()
        self._done.set()

    def destroy_node(self):
        self._done.set()
        try:
            self._timer.cancel()
        except Exception:  # noqa: BLE001
            pass
        try:
            self._render.submit(self._close_world).result(timeout=10.0)
        except Exception:  # noqa: BLE001 - best effort at shutdown
            pass
        self._render.shutdown(wait=False)
        return super().destroy_node()


def main(args=None) -> None:
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        try:
            node = SimCameraNode()
        except (InvalidParameterValueException, InvalidParameterTypeException,
                ConfigurationError) as exc:
            hint = (" (ROS parameters are typed: write a double as 15.0, an integer as 64)"
                    if isinstance(exc, InvalidParameterTypeException) else "")
            rclpy.logging.get_logger(NODE_NAME).fatal(f"invalid configuration: {exc}{hint}")
            code = 2
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
