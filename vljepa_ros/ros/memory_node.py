"""memory_node: what the robot saw, when and where, queried by text, kept across restarts.

A thin adapter around vljepa_ros.memory.SemanticMemory:

  subscribes  embedding (SemanticEmbedding; remapped to perception_node's),
              semantic_events (SemanticEvent: the text of a moment),
              camera_pose (geometry_msgs/PoseStamped, or nav_msgs/Odometry
              with pose_topic_type:=odometry) when TF is not used
  serves      ~/query (QueryMemory), ~/latest (LatestMoment), ~/stats (MemoryStats)

The camera pose of a moment is taken at its capture time: from TF
(pose_frame <- the image's frame_id at that stamp) when tf2_ros is installed
and pose_source is tf or auto, otherwise from the pose topic matched by stamp.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import rclpy
from builtin_interfaces.msg import Time
from geometry_msgs.msg import PoseStamped
from rclpy.clock import Clock, ClockType
from rclpy.node import Node

from vljepa_ros.msg import Moment as MomentMsg, SemanticEmbedding, SemanticEvent
from vljepa_ros.srv import LatestMoment, MemoryStats, QueryMemory

from ..change_detection import ChangeDetectorConfig
from ..checkpoint import CheckpointError, load_model
from ..memory import (
    MEMORY_PARAMS,
    NS,
    MemoryConfig,
    MomentStore,
    Pose,
    PoseBuffer,
    SemanticMemory,
    StoreError,
    default_memory_dir,
)
from .common import CHANGE_PARAMS, RELIABLE_QOS, Param, declare_params, model_dir, run_node

NODE_NAME = "memory_node"
PARAMS: dict[str, Param] = {
    "model_path": Param("", "Checkpoint directory ('~' expanded); empty = the shipped default model (must be "
                        "the model of perception_node: queries use its Y-encoder).", read_only=True),
    "memory_dir": Param("", f"Store: a directory (embedded, default {default_memory_dir()}) or a shared LanceDB "
                        "URI (s3://..., db://...).", read_only=True),
    "pose_source": Param("auto", "'tf': TF pose_frame <- camera frame at the capture stamp; 'topic': the "
                         "camera_pose topic matched by stamp; 'auto': tf when tf2_ros is installed and pose_frame "
                         "is set, else topic; 'none'.", choices=("auto", "tf", "topic", "none"), read_only=True),
    "pose_frame": Param("", "Fixed frame of the poses looked up in TF (e.g. map).", read_only=True),
    "pose_topic_type": Param("pose", "'pose': geometry_msgs/PoseStamped on camera_pose; 'odometry': "
                             "nav_msgs/Odometry.", choices=("pose", "odometry"), read_only=True),
    "pose_tolerance_s": Param(0.1, "A topic pose more than this far from a capture stamp (outside the buffered "
                              "poses) is not used.", (0.0, 10.0), read_only=True),
    # the store's and queries' settings: ranges and descriptions from the core (memory.MEMORY_PARAMS)
    **{name: Param(getattr(MemoryConfig, name), desc, rng, read_only=True)
       for name, (rng, desc) in MEMORY_PARAMS.items()},
    # the moments are cut by the same change detector as decoder_node's events
    **{name: dataclasses.replace(spec, read_only=True) for name, spec in CHANGE_PARAMS.items()},
}
MAINTAIN_EVERY = 1000  # stored moments between index/compaction passes


def _ns(stamp: Time) -> int:
    return int(stamp.sec) * NS + int(stamp.nanosec)


def _time(ns: int) -> Time:
    return Time(sec=int(ns // NS), nanosec=int(ns % NS))


class MemoryNode(Node):
    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        p = declare_params(self, PARAMS)
        model_path, memory_dir, pose_frame = p["model_path"], p["memory_dir"], p["pose_frame"]
        pose_source, pose_tol = p["pose_source"], p["pose_tolerance_s"]
        try:
            config = MemoryConfig(**{name: p[name] for name in MEMORY_PARAMS})
            change_config = ChangeDetectorConfig(**{name: p[name] for name in CHANGE_PARAMS})
        except ValueError as e:  # a combination (e.g. hysteresis >= threshold)
            raise ValueError(f"invalid parameters: {e}") from e
        try:
            checkpoint = load_model(model_dir(model_path))
        except CheckpointError as e:
            raise RuntimeError(f"cannot load the model: {e}") from e
        self.model_id = checkpoint.model_id
        self.embed_dim = checkpoint.model.cfg.embed_dim
        model = checkpoint.model.eval()

        def encode_text(texts: list[str]) -> np.ndarray:
            import torch

            with torch.no_grad():
                return model.encode_text(texts).numpy()

        try:
            store = MomentStore(memory_dir or default_memory_dir(), self.embed_dim, config.index_min_rows)
        except StoreError as e:
            raise RuntimeError(str(e)) from e

        self.tf_buffer = None
        self.poses = PoseBuffer(tolerance_ns=int(pose_tol * NS))
        self.pose_frame = pose_frame
        if pose_source in ("tf", "auto") and (pose_frame or pose_source == "tf"):
            try:
                from tf2_ros import Buffer, TransformListener  # optional: ROS machines

                self.tf_buffer = Buffer()
                self._tf_listener = TransformListener(self.tf_buffer, self)
            except ImportError as e:
                if pose_source == "tf":
                    raise RuntimeError("pose_source is 'tf' but tf2_ros is not installed; use pose_source:=topic") \
                        from e
        if pose_source == "tf" and not pose_frame:
            raise ValueError("invalid parameters: pose_source 'tf' needs pose_frame (the fixed frame)")
        self.pose_source = "tf" if self.tf_buffer is not None else ("none" if pose_source == "none" else "topic")

        self.memory = SemanticMemory(store, self.model_id, encode_text, config, change_config, self._pose_at)
        self._lock = threading.Lock()  # the executor thread and the maintenance thread share the memory
        self._maintaining: threading.Thread | None = None
        self._maintained_at = self.memory.stored_this_model
        self.rejected = 0

        self.create_subscription(SemanticEmbedding, "embedding", self._on_embedding, _deep_reliable())
        self.create_subscription(SemanticEvent, "semantic_events", self._on_event, RELIABLE_QOS)
        if self.pose_source == "topic":
            if p["pose_topic_type"] == "odometry":
                try:
                    from nav_msgs.msg import Odometry
                except ImportError as e:
                    raise RuntimeError("pose_topic_type 'odometry' needs nav_msgs (ros-<distro>-nav-msgs)") from e
                self.create_subscription(Odometry, "camera_pose", self._on_odometry, _deep_reliable())
            else:
                self.create_subscription(PoseStamped, "camera_pose", self._on_pose, _deep_reliable())
        self.create_service(QueryMemory, "~/query", self._on_query)
        self.create_service(LatestMoment, "~/latest", self._on_latest)
        self.create_service(MemoryStats, "~/stats", self._on_stats)
        # Wall-clock timer: buffered moments are written even when /clock stops.
        self.create_timer(1.0, self._on_timer, clock=Clock(clock_type=ClockType.STEADY_TIME))
        s = self.memory.stats()
        self.get_logger().info(
            f"model {self.model_id}; store {store.uri}: {s['stored_this_model']:,} moments of this model, "
            f"{s['stored_other_models']:,} of others (kept, not compared); poses from {self.pose_source}")

    # ---- inputs -----------------------------------------------------------------
    def _pose_at(self, stamp_ns: int, frame_id: str) -> Pose | None:
        if self.tf_buffer is not None:
            if not frame_id:
                return None
            try:
                tf = self.tf_buffer.lookup_transform(self.pose_frame, frame_id, rclpy.time.Time(nanoseconds=stamp_ns))
            except Exception:  # tf2 lookup/extrapolation errors: no pose for this moment
                return None
            t, r = tf.transform.translation, tf.transform.rotation
            return Pose(self.pose_frame, (t.x, t.y, t.z), (r.x, r.y, r.z, r.w))
        return self.poses.pose_at(stamp_ns)

    def _on_pose(self, msg: PoseStamped) -> None:
        p, q = msg.pose.position, msg.pose.orientation
        self.poses.add(_ns(msg.header.stamp), Pose(msg.header.frame_id, (p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))

    def _on_odometry(self, msg) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        self.poses.add(_ns(msg.header.stamp), Pose(msg.header.frame_id, (p.x, p.y, p.z), (q.x, q.y, q.z, q.w)))

    def _on_embedding(self, msg: SemanticEmbedding) -> None:
        reason = None
        if msg.model_id != self.model_id:
            reason = (f"model_id {msg.model_id!r} differs from this memory's {self.model_id!r} (set model_path to "
                      "perception_node's model)")
        elif len(msg.embedding) != self.embed_dim:
            reason = f"embedding has {len(msg.embedding)} values, the model's dimension is {self.embed_dim}"
        if reason is not None:
            self.rejected += 1
            self.get_logger().warn(f"rejected embedding ({self.rejected} so far): {reason}", throttle_duration_sec=5.0)
            return
        with self._lock:
            self.memory.add_embedding(_ns(msg.header.stamp), np.asarray(msg.embedding, np.float32),
                                      msg.header.frame_id)
        self._report_write_error()

    def _on_event(self, msg: SemanticEvent) -> None:
        if msg.kind == SemanticEvent.KIND_HEARTBEAT:
            return
        with self._lock:
            self.memory.attach_event(_ns(msg.header.stamp), msg.text, msg.action, msg.action_confidence,
                                     msg.model_id)

    def _on_timer(self) -> None:
        with self._lock:
            self.memory.flush(force=False)
        self._report_write_error()
        stored = self.memory.stored_this_model  # not stats(): that scans the store
        if stored - self._maintained_at >= MAINTAIN_EVERY and self._maintaining is None:
            # index + compaction can take minutes at 10^6 moments: off the executor thread
            self._maintained_at = stored
            self._maintaining = threading.Thread(target=self._maintain, name="memory_maintain", daemon=True)
            self._maintaining.start()

    def _maintain(self) -> None:
        try:
            self.memory.store.maintain()
        except Exception as e:  # noqa: BLE001 - the store stays usable without the index
            self.get_logger().error(f"store maintenance failed (queries stay exact, only slower): {e}")
        finally:
            self._maintaining = None

    def _report_write_error(self) -> None:
        if self.memory.last_error:
            self.get_logger().error(f"{self.memory.last_error} ({self.memory.pending} moments kept in memory "
                                    "until a write succeeds)", throttle_duration_sec=10.0)

    # ---- services ---------------------------------------------------------------
    @staticmethod
    def _filters(request):
        window = (_ns(request.window_start), _ns(request.window_end)) if request.use_window else None
        region = None
        if request.use_region:
            lo, hi = request.region_min, request.region_max
            region = ((lo.x, lo.y, lo.z), (hi.x, hi.y, hi.z))
        return window, region

    def _moment_msg(self, m, embeddings: bool) -> MomentMsg:
        out = MomentMsg(end_stamp=_time(m.end_ns), is_open=m is self.memory.segmenter.current or
                        (self.memory.segmenter.current is not None and m.id == self.memory.segmenter.current.id),
                        frames=int(m.n_frames), text=m.text, action=m.action,
                        action_confidence=float(m.action_confidence), score=float(m.score), model_id=m.model_id)
        out.header.stamp, out.header.frame_id = _time(m.start_ns), m.frame_id
        if m.pose is not None:
            out.has_camera_pose = True
            out.camera_pose.header.stamp, out.camera_pose.header.frame_id = _time(m.start_ns), m.pose.frame_id
            pos, q = out.camera_pose.pose.position, out.camera_pose.pose.orientation
            pos.x, pos.y, pos.z = (float(v) for v in m.pose.position)
            q.x, q.y, q.z, q.w = (float(v) for v in m.pose.orientation)
        if embeddings:
            out.embedding = np.asarray(m.embedding, np.float32).tolist()
        return out

    def _on_query(self, request, response):
        window, region = self._filters(request)
        with self._lock:
            result = self.memory.query(request.text, request.top_k, window, region)
        response.success, response.message = result.success, result.message
        response.moments = [self._moment_msg(m, request.include_embeddings) for m in result.hits]
        response.skipped_other_models = int(result.skipped_other_models)
        return response

    def _on_latest(self, request, response):
        window, region = self._filters(request)
        with self._lock:
            result = self.memory.latest(request.text, window, region)
        response.success, response.message = result.success, result.message
        if result.moment is not None:
            response.moment = self._moment_msg(result.moment, request.include_embeddings)
            response.since = _time(result.since_ns)
        response.matches, response.skipped_other_models = int(result.matches), int(result.skipped_other_models)
        return response

    def _on_stats(self, request, response):
        with self._lock:
            s = self.memory.stats()
        response.success, response.message = True, s["last_error"] or "ok"
        response.model_id, response.store_uri = s["model_id"], s["uri"]
        response.stored, response.stored_this_model = s["stored"], s["stored_this_model"]
        response.stored_other_models, response.other_model_ids = s["stored_other_models"], s["other_model_ids"]
        response.pending, response.has_open_moment = s["pending"], s["open"]
        response.write_errors, response.last_error = s["write_errors"], s["last_error"]
        response.oldest, response.newest = _time(s["oldest_ns"]), _time(s["newest_ns"])
        response.disk_bytes, response.embeddings_seen = s["disk_bytes"], s["embeddings"]
        response.embeddings_rejected = s["rejected"] + self.rejected
        response.events_attached = s["events_attached"]
        return response

    def destroy_node(self):
        with self._lock:
            try:
                self.memory.close()  # the open moment ends here and is written
            except Exception as e:  # noqa: BLE001 - shutdown must finish
                self.get_logger().error(f"writing the last moments failed: {e}")
        if self._maintaining is not None:
            self._maintaining.join(timeout=30.0)
        return super().destroy_node()


def _deep_reliable():
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


def main(args=None) -> None:
    run_node(MemoryNode, NODE_NAME, args)


if __name__ == "__main__":
    main()
