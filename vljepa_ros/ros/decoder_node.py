"""decoder_node: embedding stream -> natural-language events, only on change.

Never sees pixels. A thin adapter around vljepa_ros.semantic_events:

  subscribes  embedding (SemanticEmbedding), action (ActionEstimate),
              state_reading (WorldState: an event says the state perception
              read on the frame that triggered it, when one comes)
  publishes   semantic_events (SemanticEvent; relative, so /semantic_events
              in the root namespace), ~/stats (DecodeStats)
"""

from __future__ import annotations

import gc
import time

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from std_msgs.msg import Header

from vljepa_ros.msg import ActionEstimate, DecodeStats, SemanticEmbedding, SemanticEvent, WorldState

from ..health import Health, embedding_status
from ..runtime import load_backend
from ..semantic_events import DECODE_MODES, EventStream
from .common import (
    AUTOSTART_PARAM,
    BACKEND_PARAM,
    CHANGE_PARAMS,
    DIAGNOSTIC_PARAMS,
    DIAGNOSTICS_QOS,
    MODEL_PATH_PARAM,
    RELIABLE_QOS,
    Param,
    ReleasingTransitions,
    StampBook,
    autostart,
    bank_value,
    change_config,
    declare_params,
    diagnostic_array,
    lifecycle_state,
    model_dir,
    phrase_bank_problem,
    run_node,
    stamp_to_s,
    update_problem,
    updated_change_config,
)

NODE_NAME = "decoder_node"
KINDS = {"initial": SemanticEvent.KIND_INITIAL, "change": SemanticEvent.KIND_CHANGE,
         "heartbeat": SemanticEvent.KIND_HEARTBEAT}


PARAMS: dict[str, Param] = {
    "model_path": MODEL_PATH_PARAM,
    "backend": BACKEND_PARAM,
    "autostart": AUTOSTART_PARAM,
    "decode_mode": Param("generative", "'generative': the small text decoder; 'retrieval': nearest phrase of "
                         "text_bank.", choices=DECODE_MODES),
    "text_bank": Param([""], "Phrases for retrieval decoding; [] or [''] = the model's state bank.",
                       check=phrase_bank_problem),
    "action_match_s": Param(2.0, "Attach an ActionEstimate to a change event if its 'after' stamp is within this "
                            "many seconds of the frame that decided the event (and not before the change "
                            "began).", (0.0, 60.0)),
    "action_wait_s": Param(0.3, "An event waits up to this long (camera time) for its state reading and (a "
                           "change) its ActionEstimate, which travel on other topics; 0 = never wait.",
                           (0.0, 10.0)),
    "stats_rate_hz": Param(1.0, "Rate of ~/stats.", (0.01, 100.0), read_only=True),
    "camera_pose_frame": Param("", "Fixed frame for SemanticEvent.camera_pose via TF; empty = no pose.",
                               read_only=True),
    **CHANGE_PARAMS,
    "stale_after_s": DIAGNOSTIC_PARAMS["stale_after_s"],
}


class DecoderNode(ReleasingTransitions, LifecycleNode):
    """A managed node: ``configure`` loads the model and warms up the decoder,
    ``activate`` subscribes (a fresh stream), ``deactivate`` releases a waiting
    event and unsubscribes, ``cleanup`` frees the model. ``autostart``
    (default) goes to active at construction."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        p = declare_params(self, PARAMS)  # bad values raise here, before any model is loaded
        change_config(p)  # and a bad combination (hysteresis >= threshold) too
        self.pose_frame = p["camera_pose_frame"]
        self.stream: EventStream | None = None
        self.configure_error: str | None = None
        self.autostarting = False
        self.model_id, self.embed_dim, self.warm_up_ms = "", 0, 0.0
        self.stale_after_s = p["stale_after_s"]
        self.add_on_set_parameters_callback(self._on_set_parameters)

        self.tf_buffer = None
        if self.pose_frame:
            try:
                from tf2_ros import Buffer, TransformListener  # optional: ROS machines

                self.tf_buffer = Buffer()
                self._tf_listener = TransformListener(self.tf_buffer, self)
            except ImportError:
                self.get_logger().warn("camera_pose_frame is set but tf2_ros is not installed: no camera poses")

        self.event_pub = self.create_publisher(SemanticEvent, "semantic_events", RELIABLE_QOS)
        self.stats_pub = self.create_publisher(DecodeStats, "~/stats", RELIABLE_QOS)
        self._subs: list = []  # live only while active
        # Wall-clock timer: under use_sim_time a stopped simulation or bag stops
        # /clock, and an event still waiting for its action must be released.
        self.create_timer(1.0 / p["stats_rate_hz"], self._publish_stats,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        self.embeddings_seen = self.events = self.heartbeats = self.rejected = self.frames_skipped = 0
        self._health = Health()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_timer(1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._stamps = StampBook()
        self._frame_id = ""
        autostart(self, p["autostart"])

    # ---- lifecycle ---------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        p = {name: self.get_parameter(name).value for name in PARAMS}
        model_path = model_dir(p["model_path"])
        try:
            checkpoint = load_backend(p["backend"], model_path, log=self.get_logger().info)
            stream = EventStream(checkpoint, p["decode_mode"], change_config(p), bank_value(p["text_bank"]),
                                 p["action_match_s"], p["action_wait_s"])
            self.warm_up_ms = stream.warm_up()  # the first event does not wait for lazy set-up
        except Exception as e:  # noqa: BLE001 - rclpy would swallow it; the reason must reach the log
            return self.configure_failed(p["model_path"], e)
        self.model_id, self.embed_dim = checkpoint.model_id, checkpoint.model.cfg.embed_dim
        self.stream, self.configure_error = stream, None
        self.get_logger().info(f"model {self.model_id}; decode mode '{stream.mode}'; threshold "
                               f"{stream.config.threshold}; warm-up {self.warm_up_ms:.0f} ms")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.stream.reset()  # a fresh stream: the first event is an INITIAL one
        self._health = Health()  # silence and rates count from now
        # Embeddings are small and every one matters to the change detector: reliable, deep queue.
        self._subs = [
            self.create_subscription(SemanticEmbedding, "embedding", self._on_embedding, _deep_reliable()),
            self.create_subscription(ActionEstimate, "action", self._on_action, RELIABLE_QOS),
            self.create_subscription(WorldState, "state_reading", self._on_reading, RELIABLE_QOS)]
        self._check_action_publishers()
        return TransitionCallbackReturn.SUCCESS

    def _unsubscribe(self, flush: bool = True) -> None:
        if flush and self._subs and self.stream is not None:
            self._publish(self.stream.flush())  # an event waiting for its notes is not lost
        for sub in self._subs:
            self.destroy_subscription(sub)
        self._subs = []

    def _release(self, flush: bool = True) -> None:
        self._unsubscribe(flush)
        self.stream, self.model_id, self.embed_dim = None, "", 0
        gc.collect()

    def destroy_node(self):
        self._release(flush=self.context.ok())  # after Ctrl-C the context is gone: nothing can be published
        return super().destroy_node()

    # ---- parameters and inputs ---------------------------------------------------
    def _on_set_parameters(self, params) -> SetParametersResult:
        reason = update_problem(PARAMS, params)
        text_bank = None
        for param in params:
            if param.name == "text_bank":
                text_bank = bank_value(param.value) or []
        current = self.stream.config if self.stream is not None else \
            change_config({n: self.get_parameter(n).value for n in CHANGE_PARAMS})
        try:
            if reason is not None:
                raise ValueError(reason)
            config = updated_change_config(current, params)
            for param in params:
                if param.name == "decode_mode" and self.stream is not None:
                    self.stream.set_mode(param.value)
        except ValueError as e:
            return SetParametersResult(successful=False, reason=str(e))
        for param in params:
            if param.name == "stale_after_s":
                self.stale_after_s = float(param.value)
        if self.stream is None:
            return SetParametersResult(successful=True)  # the model's parameters are read in configure
        self.stream.set_config(config)
        if text_bank is not None:
            self.stream.set_text_bank(text_bank)
        for param in params:  # ranges enforced by rclpy from the descriptors
            if param.name in ("action_match_s", "action_wait_s"):
                setattr(self.stream, param.name, float(param.value))
        return SetParametersResult(successful=True)

    def _on_action(self, msg: ActionEstimate) -> None:
        if msg.actions and msg.model_id == self.model_id:
            self._publish(self.stream.note_action(stamp_to_s(msg.before_stamp), stamp_to_s(msg.header.stamp),
                                                   msg.actions[0],
                                                   float(msg.probabilities[0]) if msg.probabilities else 0.0))

    def _on_reading(self, msg: WorldState) -> None:
        if msg.model_id == self.model_id and msg.labels and len(msg.embedding) == self.embed_dim:
            self._publish(self.stream.note_reading(stamp_to_s(msg.header.stamp), msg.labels[0],
                                                    float(msg.probabilities[0]) if msg.probabilities else 0.0,
                                                    np.asarray(msg.embedding)))

    def _on_embedding(self, msg: SemanticEmbedding) -> None:
        self.embeddings_seen += 1
        self._health.note_input()
        self.frames_skipped += msg.frames_skipped
        reason = None
        if msg.model_id != self.model_id:
            reason = f"model_id {msg.model_id!r} differs from this decoder's {self.model_id!r}"
        elif len(msg.embedding) != self.embed_dim:
            reason = f"embedding has {len(msg.embedding)} values, the model's dimension is {self.embed_dim}"
        embedding = np.asarray(msg.embedding, dtype=np.float32)
        if reason is None and not np.all(np.isfinite(embedding)):
            reason = "embedding contains NaN or inf"
        if reason is not None:
            self.rejected += 1
            self.get_logger().warn(f"rejected embedding ({self.rejected} so far): {reason}",
                                   throttle_duration_sec=5.0)
            return
        self._frame_id = msg.header.frame_id
        self._publish(self.stream.update(self._stamps.add(msg.header.stamp), embedding))

    def _publish(self, events) -> None:
        for event in events:
            self._publish_event(event)

    def _publish_event(self, event) -> None:
        out = SemanticEvent(
            kind=KINDS[event.kind],
            header=Header(stamp=self._stamps.get(event.state_start_s), frame_id=self._frame_id),
            previous_stamp=self._stamps.get(event.previous_start_s), text=event.text,
            previous_text=event.previous_text, change_score=float(event.change_score),
            confidence=float(event.confidence), action=event.action,
            action_confidence=float(event.action_confidence), model_id=self.model_id,
            embedding=event.embedding.tolist())
        pose = self._camera_pose(out.header)
        if pose is not None:
            out.has_camera_pose, out.camera_pose = True, pose
        self.events += 1
        self.heartbeats += event.kind == "heartbeat"
        self.event_pub.publish(out)

    def _camera_pose(self, header: Header) -> PoseStamped | None:
        if self.tf_buffer is None or not header.frame_id:
            return None
        try:
            stamp = rclpy.time.Time.from_msg(header.stamp)
            tf = self.tf_buffer.lookup_transform(self.pose_frame, header.frame_id, stamp)
        except Exception:  # tf2 lookup/extrapolation errors: no pose for this event
            return None
        pose = PoseStamped()
        pose.header.stamp, pose.header.frame_id = header.stamp, self.pose_frame
        t, r = tf.transform.translation, tf.transform.rotation
        pose.pose.position.x, pose.pose.position.y, pose.pose.position.z = t.x, t.y, t.z
        pose.pose.orientation = r
        return pose

    def _check_action_publishers(self) -> None:
        # An event waits for its ActionEstimate / reading only if something publishes them.
        _, action_sub, reading_sub = self._subs
        self.stream.expect_actions = self.count_publishers(action_sub.topic_name) > 0
        self.stream.expect_readings = self.count_publishers(reading_sub.topic_name) > 0

    def _publish_stats(self) -> None:
        if not self._subs:
            return  # not active
        self._check_action_publishers()
        if self.stream.waiting_since is not None and time.monotonic() - self.stream.waiting_since > 1.0:
            self._publish(self.stream.flush())  # the stream stopped while an event waited for its action
        c = self.stream.counters()
        seen = self.embeddings_seen
        self.stats_pub.publish(DecodeStats(
            header=Header(stamp=self.get_clock().now().to_msg()),
            embeddings_seen=seen, decodes=c["decodes"], events=self.events, heartbeats=self.heartbeats,
            rejected=self.rejected + c["invalid"] + c["stale"],
            decode_ratio=float(c["decodes"] / seen) if seen else 0.0,
            mean_decode_ms=float(c["mean_decode_ms"]), current_text=self.stream.current_text))


    def _publish_diagnostics(self) -> None:
        state = lifecycle_state(self)
        if state != "active":  # a managed node that is not active is not expected to take input
            self._diagnostics_pub.publish(diagnostic_array(
                self, f"{self.get_fully_qualified_name()}: events", self.model_id, 0,
                f"{state}: not taking embeddings", {"lifecycle_state": state, "model_id": self.model_id}))
            return
        c = self.stream.counters()
        counters = {"embeddings_seen": self.embeddings_seen, "decodes": c["decodes"],
                    "texts_read": c["texts_read"], "events": self.events, "heartbeats": self.heartbeats,
                    "rejected": self.rejected + c["invalid"] + c["stale"], "camera_frames_skipped": self.frames_skipped}
        rates = self._health.rates(counters)
        level, message = embedding_status(rates, self.embeddings_seen, self._health.silence_s(), self.stale_after_s)
        seen = self.embeddings_seen
        values = {"lifecycle_state": state, "embedding_rate_hz": rates["embeddings_seen"],
                  "decode_rate_hz": rates["decodes"], **counters,
                  "decode_ratio": float(c["decodes"] / seen) if seen else 0.0,
                  "mean_decode_ms": float(c["mean_decode_ms"]), "decode_mode": self.stream.mode,
                  "model_id": self.model_id, "warm_up_ms": self.warm_up_ms}
        self._diagnostics_pub.publish(diagnostic_array(self, f"{self.get_fully_qualified_name()}: events",
                                                       self.model_id, level, message, values))


def _deep_reliable():
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)


def main(args=None) -> None:
    run_node(DecoderNode, NODE_NAME, args)


if __name__ == "__main__":
    main()
