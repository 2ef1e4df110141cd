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

Ground truth: one JSON object per image, same stamp as the image's header,
schema in :mod:`vljepa_ros.sim.ground_truth` (the bag recorder writes the same).

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
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from geometry_msgs.msg import TransformStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.qos import QoSDurabilityPolicy, QoSHistoryPolicy, QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from ..health import RateMeter
from ..imaging import rgb_to_image_fields
from ..sim.camera import SIM_EPOCH_NS, camera_pose, pinhole_intrinsics, sim_stamp_ns
from ..sim.episodes import EpisodeConfig, EpisodeScript
from ..sim.ground_truth import truth_record
from .common import Param, declare_params, run_node, update_problem

try:  # rosgraph_msgs ships with every ROS 2 install, but stay explicit
    from rosgraph_msgs.msg import Clock as ClockMsg
except ImportError:  # pragma: no cover - depends on the install
    ClockMsg = None

NODE_NAME = "sim_camera"
MAX_FPS = 60.0


def _not_empty(name: str, value: str) -> str | None:
    return None if value.strip() else f"{name} must not be empty"


def _positive(name: str, value: float) -> str | None:
    return None if value > 0 else f"{name}={value} must be in (0, {MAX_FPS:g}] frames/s"


PARAMS: dict[str, Param] = {
    "episode_seed": Param(0, "Seed of the scripted episode (EpisodeScript.generate); with loop, the next episode "
                          "uses seed + 1.", (0, 2**31 - 1), read_only=True),
    "split": Param("test", "Dataset split the episode is drawn from: train, val or test (held-out compositions "
                   "and camera poses).", choices=("train", "val", "test"), read_only=True),
    "fps": Param(15.0, "Publication rate (frames/s). The episode content is generated at the start-up value; "
                 "changing it at run time changes the playback speed.", (0.0, MAX_FPS), check=_positive),
    "image_size": Param(224, "Width and height of the square image (px).", (32, 1024), read_only=True),
    "loop": Param(False, "After the episode ends: false = log once and stop publishing; true = play the next seed."),
    "start_delay_s": Param(1.0, "Wait before the first frame so subscribers can connect (s).", (0.0, 60.0),
                           read_only=True),
    "wait_for_subscribers": Param(0, "The episode starts only once camera/image_raw has this many subscribers "
                                  "(after start_delay_s): a perception node that subscribes after loading its "
                                  "model misses no frame. 0 = do not wait.", (0, 100), read_only=True),
    "max_frames": Param(0, "Frames per episode to publish; 0 = the whole episode.", (0, 1_000_000)),
    "time_source": Param("ros", "Stamps: 'ros' = the node clock at publication (a live camera); 'sim' = the "
                         f"episode time + {SIM_EPOCH_NS // 1_000_000_000} s, also published on /clock for "
                         "use_sim_time nodes.", choices=("ros", "sim"), read_only=True),
    "frame_id": Param("sim_camera_optical_frame", "header.frame_id of images and camera info (optical frame: x "
                      "right, y down, z forward).", read_only=True, check=_not_empty),
    "reliable": Param(True, "Publish images and camera info reliable keep-last-5 (true) or best-effort "
                      "SensorDataQoS (false).", read_only=True),
    "publish_tf": Param(True, "Publish world_frame_id -> frame_id on /tf_static (needs tf2_ros; skipped with a "
                        "log line when it is not installed).", read_only=True),
    "world_frame_id": Param("world", "Parent frame of the camera pose (the MuJoCo world frame).", read_only=True,
                            check=_not_empty),
}
# reliable keep-last-5 (a SensorDataQoS subscriber is compatible with it), or the usual sensor-data profile
RELIABLE_IMAGES = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=5, reliability=QoSReliabilityPolicy.RELIABLE,
                             durability=QoSDurabilityPolicy.VOLATILE)
TRUTH_QOS = QoSProfile(history=QoSHistoryPolicy.KEEP_LAST, depth=50, reliability=QoSReliabilityPolicy.RELIABLE,
                       durability=QoSDurabilityPolicy.VOLATILE)
# Reliable is compatible with rclpy's/rclcpp's best-effort /clock subscription.
CLOCK_QOS = QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE)


class SimCameraNode(Node):
    """Publishes a scripted MuJoCo episode as a camera (see the module docstring)."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        p = declare_params(self, PARAMS)
        self.add_on_set_parameters_callback(lambda params: _result(update_problem(PARAMS, params)))
        self.add_post_set_parameters_callback(self._apply_parameters)
        self._seed, self._split, self._size = p["episode_seed"], p["split"], p["image_size"]
        self._fps = p["fps"]
        self._episode_fps = self._fps  # content rate, fixed for the node's life
        self._loop, self._max_frames = p["loop"], p["max_frames"]
        self._start_delay, self._wait_for_subscribers = p["start_delay_s"], p["wait_for_subscribers"]
        self._time_source, self._frame_id, self._world_frame_id = p["time_source"], p["frame_id"], p["world_frame_id"]
        if self._time_source == "sim" and ClockMsg is None:
            raise ValueError("time_source 'sim' needs rosgraph_msgs (rosgraph_msgs/Clock) to publish /clock, and it "
                             "is not importable: install ros-<distro>-rosgraph-msgs or use time_source:=ros")

        # The ROS-free simulation: the episode script is cheap and pure.
        self._config = EpisodeConfig(fps=self._episode_fps)
        self._script = EpisodeScript.generate(self._seed, self._split, self._config)
        self._time_base_s = 0.0  # sim time at the start of the current episode

        image_qos = RELIABLE_IMAGES if p["reliable"] else qos_profile_sensor_data
        self._image_pub = self.create_publisher(Image, "camera/image_raw", image_qos)
        self._info_pub = self.create_publisher(CameraInfo, "camera/camera_info", image_qos)
        self._truth_pub = self.create_publisher(String, "camera/ground_truth", TRUTH_QOS)
        self._clock_pub = self.create_publisher(ClockMsg, "/clock", CLOCK_QOS) if self._time_source == "sim" else None
        self._tf = self._tf_broadcaster() if p["publish_tf"] else None

        # State shared between the timer (executor thread) and the render thread.
        self._done = threading.Event()
        self._frames_iter: Iterator | None = None
        self._episode_frames = 0
        self._world = None
        self._world_error: BaseException | None = None
        self._camera_info: CameraInfo | None = None
        self._render_errors = 0
        self._published = 0
        self._rate = RateMeter()
        self._render = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sim_camera_render")
        self._render.submit(self._create_world)  # overlaps with start_delay_s

        self._t0 = time.monotonic()
        # A steady clock: the pacing must not depend on /clock, which this node may itself publish.
        self._timer = self.create_timer(1.0 / self._fps, self._on_timer,
                                        callback_group=MutuallyExclusiveCallbackGroup(),
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.get_logger().info(
            f"episode seed={self._seed} split={self._split}: {self._script.n_frames} frames "
            f"({self._script.n_frames / self._episode_fps:.1f} s), {len(self._script.events)} events; "
            f"{self._size}x{self._size} at {self._fps:g} fps, time_source={self._time_source}, "
            f"first frame in {self._start_delay:g} s"
            + (f" once {self._wait_for_subscribers} subscriber(s) listen" if self._wait_for_subscribers else ""))

    def _tf_broadcaster(self):
        try:
            from tf2_ros import StaticTransformBroadcaster
        except ImportError:
            self.get_logger().info("tf2_ros is not installed: the camera pose is not published as TF "
                                   "(it is in camera/ground_truth 'camera_pose')")
            return None
        return StaticTransformBroadcaster(self)

    def _apply_parameters(self, params) -> None:
        """After a set that _validate accepted (ranges and read-only are rclpy's, from the descriptors)."""
        for prm in params:
            if prm.name == "fps":
                self._fps = float(prm.value)
                self._timer.timer_period_ns = int(1e9 / self._fps)
                self._rate.clear()
                self.get_logger().info(f"fps set to {self._fps:g}")
            elif prm.name == "loop":
                self._loop = bool(prm.value)
            elif prm.name == "max_frames":
                self._max_frames = int(prm.value)

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
        return Time(nanoseconds=sim_stamp_ns(self._time_base_s + t), clock_type=ClockType.ROS_TIME)

    # ------------------------------------------------------- render thread
    def _create_world(self) -> None:
        try:
            from ..sim.world import TabletopWorld  # MuJoCo + EGL: created on the render thread

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
            self._clock_pub.publish(ClockMsg(clock=stamp))  # first, so stamps are never ahead of /clock
        else:
            stamp = self.get_clock().now().to_msg()
        if i == 0 or self._published == 0:
            self._send_tf(stamp)
        height, width, step, data = rgb_to_image_fields(rgb, "rgb8")
        img = Image(height=height, width=width, step=step, encoding="rgb8", is_bigendian=0, data=array.array("B", data))
        img.header.stamp, img.header.frame_id = stamp, self._frame_id
        info = self._camera_info
        info.header.stamp, info.header.frame_id = stamp, self._frame_id
        self._image_pub.publish(img)
        self._info_pub.publish(info)
        record = truth_record(self._script, truth, stamp.sec * 1_000_000_000 + stamp.nanosec, self._frame_id,
                              self._world_frame_id)
        self._truth_pub.publish(String(data=json.dumps(record)))
        self._published += 1
        self._log_rate(self._rate.tick(time.monotonic(), window=4 * max(1, int(self._fps))))

    def _log_rate(self, rate: float | None) -> None:
        if rate is None or len(self._rate) < max(3, int(self._fps)):
            return
        if rate < 0.9 * self._fps:
            self.get_logger().warn(f"rendering is slower than fps: {rate:.1f} frames/s achieved, {self._fps:g} "
                                   f"requested; frames are published late, none skipped", throttle_duration_sec=10.0)
        else:
            self.get_logger().info(f"{self._published} frames published, {rate:.1f} frames/s",
                                   throttle_duration_sec=10.0)

    def _send_tf(self, stamp) -> None:
        if self._tf is None:
            return
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
        rate = self._rate.overall(self._published)
        self.get_logger().info(
            f"episode seed={self._script.seed} split={self._script.split} finished: {n} frames "
            f"published ({self._published} in total, {rate:.1f} frames/s achieved, "
            f"{self._fps:g} requested)")
        if not self._loop:
            self.get_logger().info("loop is false: no more frames")
            self._finish()
            return
        self._time_base_s += n / self._episode_fps  # /clock keeps going forward
        seed = self._script.seed + 1
        self._script = EpisodeScript.generate(seed, self._split, self._config)
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


def _result(reason: str | None) -> SetParametersResult:
    return SetParametersResult(successful=reason is None, reason=reason or "")


def main(args=None) -> None:
    run_node(SimCameraNode, NODE_NAME, args)


if __name__ == "__main__":
    main()
