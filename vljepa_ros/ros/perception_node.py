"""perception_node: camera images -> predicted meaning, world state, actions.

The only node that touches pixels. A thin adapter around
vljepa_ros.perception.PerceptionPipeline:

  subscribes  image (sensor_msgs/Image) or image/compressed (CompressedImage),
              best effort, keep-last-1
  publishes   ~/embedding (SemanticEmbedding), ~/world_state (WorldState),
              ~/action (ActionEstimate, when the scene changed and settled),
              ~/state_reading (WorldState: the state read fact by fact on each
              trigger of the change detector, what decoder_node's events say)
  serves      ~/predict_outcome (PredictOutcome), ~/ask (Ask)

A managed (lifecycle) node: configure loads the model, activate subscribes;
with autostart (default) it is active once constructed.

Frames are handed to one worker thread through a one-slot mailbox: when
inference is slower than the camera the older frame is replaced (dropped and
counted), so latency stays bounded instead of a queue growing.
"""

from __future__ import annotations

import gc
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, TransitionCallbackReturn
from sensor_msgs.msg import CompressedImage, Image

from vljepa_ros.msg import ActionEstimate, SemanticEmbedding, WorldState
from vljepa_ros.srv import Ask, PredictOutcome

from ..camera_stream import CameraStamps, RateLimit
from ..health import Health, LostFrames, image_status, recent_latency
from ..imaging import DEFAULT_MAX_PIXELS, ImageConversionError
from ..latest_frame import LatestFrameWorker
from ..perception import (
    ACTION_OUTCOME_WEIGHT_MAX,
    NonFiniteOutput,
    PerceptionConfig,
    PerceptionPipeline,
    RequestLimits,
)
from ..runtime import load_backend
from .common import (
    AUTOSTART_PARAM,
    BACKEND_PARAM,
    CHANGE_PARAMS,
    DIAGNOSTIC_PARAMS,
    DIAGNOSTICS_QOS,
    MODEL_PATH_PARAM,
    RELIABLE_QOS,
    SENSOR_QOS_LATEST,
    Param,
    ReleasingTransitions,
    StampBook,
    autostart,
    bank_value,
    change_config,
    declare_params,
    diagnostic_array,
    lifecycle_state,
    make_image_converter,
    model_dir,
    phrase_bank_problem,
    run_node,
    service_qos,
    stamp_to_s,
    text_length_check,
    update_problem,
    updated_change_config,
)

NODE_NAME = "perception_node"
# decoder_node's change-detector parameters that decide when ~/action is estimated
# (all but the heartbeat, which only concerns events)
CHANGE_DETECTOR = tuple(n for n in CHANGE_PARAMS if n != "max_silence_s")

PARAMS: dict[str, Param] = {
    "model_path": MODEL_PATH_PARAM,
    "image_transport": Param("raw", "'raw': sensor_msgs/Image on 'image'; 'compressed': CompressedImage on "
                             "'image/compressed'.", choices=("raw", "compressed"), read_only=True),
    "use_cv_bridge": Param(True, "Convert images with cv_bridge when it is installed (else the built-in "
                           "conversion of rgb8, bgr8, rgba8, bgra8, mono8, mono16).", read_only=True),
    "backend": BACKEND_PARAM,
    "autostart": AUTOSTART_PARAM,
    "threads": Param(1, "Intra-op threads for inference, torch or the ONNX engine (1: keeps up best when other "
                     "processes share the CPU).", (1, 64), read_only=True),
    "window_frames": Param(0, "Frames per window; 0 = the model's window size.", (0, 64), read_only=True),
    "max_rate_hz": Param(0.0, "Upper bound on processed frames per second (camera time); 0 = every frame the "
                         "node can keep up with.", (0.0, 240.0)),
    "max_image_pixels": Param(DEFAULT_MAX_PIXELS, "Largest image accepted, in pixels (width x height); larger "
                              "images, and compressed images that would decode larger (decompression bombs), "
                              "are counted as malformed.", (1, 1 << 28)),
    "service_queue_depth": Param(100, "Requests ~/ask and ~/predict_outcome queue while one is answered "
                                 "(the rmw default, 10, left the rest unanswered).", (1, 10_000),
                                 read_only=True),
    "ask_max_candidates": Param(RequestLimits.max_texts, "Most candidates one ~/ask or ~/predict_outcome "
                                "request may give (each is encoded, and cached until the cache is full); more "
                                "are refused.", (1, 10_000)),
    "max_text_chars": Param(RequestLimits.max_chars, "Longest question, action or candidate text a service "
                            "accepts, in characters.", (1, 100_000)),
    "text_cache_mb": Param(64.0, "Memory for the encoded texts of service requests (the Y-encoder's per-text "
                           "cache); when full it starts over, so ~/ask with ever new candidates stays bounded.",
                           (1.0, 4096.0), read_only=True),
    "state_query": Param("", "Query that conditions the state embedding (copied into every ~/embedding message, "
                         "so at most 1000 characters); empty = the model's default.", check=text_length_check(1000)),
    "state_bank": Param([""], "State phrases ranked on ~/world_state; [] or [''] = the model's bank.",
                        check=phrase_bank_problem),
    "action_bank": Param([""], "Action phrases ranked on ~/action; [] or [''] = the model's bank.",
                         check=phrase_bank_problem),
    "read_state": Param(PerceptionConfig.read_state,
                        "On each trigger of the change detector (a settled change, the stream's first state), "
                        "read the state fact by fact (colour and shape per cell, the lamp) and with the state "
                        "query over state_bank (14 queries in one pass), and publish it on ~/state_reading "
                        "(decoder_node's events say it); ~/action's "
                        "states are then readings. The tabletop world's facts: off for another world."),
    "action_from_readings": Param(PerceptionConfig.action_from_readings,
                                  "~/action ranks first the actions that link the state read before the change "
                                  "to the state read after it (needs read_state)."),
    "world_state_top_k": Param(3, "Labels on ~/world_state.", (1, 100)),
    "action_top_k": Param(3, "Actions on ~/action.", (1, 100)),
    "action_outcome_weight": Param(
        PerceptionConfig.action_outcome_weight,
        "Weight of the world model's check in ~/action: each action's score + this x the cosine between the "
        "outcome predicted for it from the window before and the state seen after; 0 = off.",
        (0.0, ACTION_OUTCOME_WEIGHT_MAX)),
    # the change detector that decides when ~/action is estimated: the same
    # parameters as decoder_node's, so an action is ready for each event
    **{n: CHANGE_PARAMS[n] for n in CHANGE_DETECTOR},
    **DIAGNOSTIC_PARAMS,
}


class PerceptionNode(ReleasingTransitions, LifecycleNode):
    """A managed node: ``configure`` loads and warms up the model, ``activate``
    subscribes to the camera (a fresh stream), ``deactivate`` unsubscribes and
    keeps the model, ``cleanup`` frees it. ``autostart`` (default) goes to
    active at construction; services answer only while active."""

    def __init__(self, **kwargs):
        super().__init__(NODE_NAME, **kwargs)
        p = declare_params(self, PARAMS)  # bad values raise here, before any model is loaded
        change_config(p)  # and a bad combination (hysteresis >= threshold) too
        self.pipeline: PerceptionPipeline | None = None
        self.configure_error: str | None = None
        self.autostarting = False
        self.warm_up_ms = 0.0
        self._rate = RateLimit(p["max_rate_hz"])
        self.max_image_pixels = p["max_image_pixels"]
        self._limits = RequestLimits(p["ask_max_candidates"], p["max_text_chars"])
        self.stale_after_s, self.latency_budget_ms = p["stale_after_s"], p["latency_budget_ms"]
        # bank changes are encoded here, one after the other; _text_lock keeps them
        # and the services from using the Y-encoder's text cache at the same time
        self._bank_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perception_banks")
        self._bank_pending = 0
        self._text_lock = threading.Lock()
        self.add_on_set_parameters_callback(self._validate_parameters)

        self.embedding_pub = self.create_publisher(SemanticEmbedding, "~/embedding", RELIABLE_QOS)
        self.world_state_pub = self.create_publisher(WorldState, "~/world_state", RELIABLE_QOS)
        self.action_pub = self.create_publisher(ActionEstimate, "~/action", RELIABLE_QOS)
        self.reading_pub = self.create_publisher(WorldState, "~/state_reading", RELIABLE_QOS)
        services = service_qos(p["service_queue_depth"])
        self.create_service(PredictOutcome, "~/predict_outcome", self._on_predict_outcome, qos_profile=services)
        self.create_service(Ask, "~/ask", self._on_ask, qos_profile=services)

        convert_raw, convert_compressed, self.using_cv_bridge = make_image_converter(
            p["use_cv_bridge"], lambda: self.max_image_pixels)
        compressed = p["image_transport"] == "compressed"
        self._image_topic, self._image_type = ("image/compressed", CompressedImage) if compressed else \
            ("image", Image)
        self._convert = convert_compressed if compressed else convert_raw
        self._image_sub = None  # live only while active

        # counters (read by tests and benchmarks)
        self.received = self.processed = self.malformed = self.stale = self.rate_skipped = self.invalid = 0
        self._lost = LostFrames()  # frames that never arrived (stamp gaps): DDS drops them unseen
        self._camera_stamps = CameraStamps()
        self.latencies_ms: deque[float] = deque(maxlen=10_000)
        self.stage_ms: deque[dict] = deque(maxlen=10_000)
        self._stamps = StampBook()
        self._skipped_since_publish = 0
        self._frames: LatestFrameWorker | None = None
        self._dropped_before = 0  # frames dropped by workers of earlier configurations
        self._health = Health()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", DIAGNOSTICS_QOS)
        self.create_timer(1.0, self._publish_diagnostics, clock=Clock(clock_type=ClockType.STEADY_TIME))
        autostart(self, p["autostart"])

    # ---- lifecycle ---------------------------------------------------------------
    def on_configure(self, state) -> TransitionCallbackReturn:
        p = {name: self.get_parameter(name).value for name in PARAMS}
        model_path = model_dir(p["model_path"])
        try:
            checkpoint = load_backend(p["backend"], model_path, p["threads"], log=self.get_logger().info)
            pipeline = PerceptionPipeline(
                checkpoint,
                PerceptionConfig(window_frames=p["window_frames"], world_state_top_k=p["world_state_top_k"],
                                 action_top_k=p["action_top_k"], change=change_config(p),
                                 threads=p["threads"], action_outcome_weight=p["action_outcome_weight"],
                                 read_state=p["read_state"], action_from_readings=p["action_from_readings"]),
                state_bank=bank_value(p["state_bank"]), action_bank=bank_value(p["action_bank"]))
            if p["state_query"]:
                pipeline.set_state_query(p["state_query"])
            self.warm_up_ms = pipeline.warm_up()  # before subscribing: the first frames are not lost
        except Exception as e:  # noqa: BLE001 - rclpy would swallow it; the reason must reach the log
            return self.configure_failed(p["model_path"], e)
        pipeline.bound_text_cache(p["text_cache_mb"])
        self.pipeline, self.configure_error = pipeline, None
        self._frames = LatestFrameWorker(self._process, self._on_frame_error, name="perception_worker")
        self.get_logger().info(
            f"model {pipeline.model_id}; {len(pipeline.world.state_bank)} state phrases, "
            f"{len(pipeline.world.action_bank)} actions; warm-up {self.warm_up_ms:.0f} ms")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state) -> TransitionCallbackReturn:
        self.pipeline.reset()  # a fresh stream: no window spans the time the node was inactive
        self._rate.restart()
        self._skipped_since_publish = 0
        self._lost.restart()  # gaps are not counted across the inactive time (the count is kept)
        self._health = Health()  # silence and rates count from now
        self._image_sub = self.create_subscription(self._image_type, self._image_topic, self._on_image,
                                                   SENSOR_QOS_LATEST)
        self.get_logger().info(f"active: subscribed to '{self._image_sub.topic_name}' "
                               f"({'cv_bridge' if self.using_cv_bridge else 'built-in conversion'})")
        return TransitionCallbackReturn.SUCCESS

    def _unsubscribe(self) -> None:
        if self._image_sub is not None:
            self.destroy_subscription(self._image_sub)
            self._image_sub = None
        if self._frames is not None and not self._frames.discard():  # a waiting frame is forgotten
            self.get_logger().warn("the frame being processed took over 5 s; unsubscribed anyway")

    def _release(self) -> None:
        """Unsubscribe and free the model (cleanup, shutdown, destroy)."""
        self._unsubscribe()
        if self._frames is not None:
            self._frames.close()
            self._dropped_before += self._frames.dropped
            self._frames = None
        self.pipeline = None  # a bank being encoded holds its own reference and finds None afterwards
        gc.collect()

    # ---- parameters --------------------------------------------------------------
    def _validate_parameters(self, params) -> SetParametersResult:
        reason = update_problem(PARAMS, params)
        current = self.pipeline.config.change if self.pipeline is not None else \
            change_config({n: self.get_parameter(n).value for n in CHANGE_DETECTOR})
        if reason is None:
            try:
                change = updated_change_config(current, params, CHANGE_DETECTOR)
            except ValueError as e:
                reason = str(e)
        if reason is not None:
            return SetParametersResult(successful=False, reason=reason)
        # Valid: apply (ranges and read-only are enforced by rclpy from the descriptors).
        for param in params:
            if param.name == "max_rate_hz":
                self._rate.max_rate_hz = float(param.value)
            elif param.name == "max_image_pixels":
                self.max_image_pixels = int(param.value)
            elif param.name == "ask_max_candidates":
                self._limits.max_texts = int(param.value)
            elif param.name == "max_text_chars":
                self._limits.max_chars = int(param.value)
            elif param.name in DIAGNOSTIC_PARAMS:
                setattr(self, param.name, float(param.value))
        if self.pipeline is None:
            return SetParametersResult(successful=True)  # the model's parameters are read in configure
        for param in params:
            if param.name in ("state_bank", "action_bank"):
                # encoding a large bank takes seconds (10,000 phrases: 24 s): off the executor thread
                self._bank_pending += 1
                self._bank_worker.submit(self._apply_bank, param.name, bank_value(param.value) or [])
            elif param.name == "state_query":
                self.pipeline.set_state_query(param.value or self.pipeline.checkpoint.queries.get("state", ""))
            elif param.name == "world_state_top_k":
                self.pipeline.config.world_state_top_k = int(param.value)
            elif param.name == "action_top_k":
                self.pipeline.config.action_top_k = int(param.value)
            elif param.name == "action_outcome_weight":
                self.pipeline.config.action_outcome_weight = float(param.value)
            elif param.name in ("read_state", "action_from_readings"):
                setattr(self.pipeline.config, param.name, bool(param.value))
        if any(p.name in CHANGE_DETECTOR for p in params):
            self.pipeline.set_change_config(change)
        return SetParametersResult(successful=True)

    def _apply_bank(self, name: str, texts: list[str]) -> None:
        t0 = time.perf_counter()
        try:
            with self._text_lock:
                pipeline = self.pipeline
                if pipeline is None:  # cleaned up meanwhile: configure reads the parameter
                    return
                pipeline.encode_texts_unlocked(texts)  # the slow part, while frames go on
                pipeline.set_banks(**{name: texts})  # under the pipeline's lock: cached now
            bank = pipeline.world.state_bank if name == "state_bank" else pipeline.world.action_bank
            self.get_logger().info(f"{name}: {len(bank)} phrases in use "
                                   f"(encoded in {(time.perf_counter() - t0) * 1e3:.0f} ms)")
        except Exception as e:  # the old bank stays in use
            self.get_logger().error(f"{name} not applied: {e!r}")
        finally:
            self._bank_pending -= 1

    # ---- frames ------------------------------------------------------------------
    def _on_image(self, msg) -> None:
        received_at = time.perf_counter()
        self._check_stamp(msg)
        lost = self._lost.add(stamp_to_s(msg.header.stamp))
        self._health.note_input()
        self.received += 1
        # inference is behind when a waiting frame is replaced (counted as dropped)
        frames = self._frames
        if frames is not None:  # None only after cleanup (the subscription is gone by then)
            self._skipped_since_publish += lost + frames.put((msg, received_at))

    def _check_stamp(self, msg) -> None:
        """Stamp the frame with its arrival time once the camera's own stamps
        proved unusable (``CameraStamps``)."""
        if warning := self._camera_stamps.check(stamp_to_s(msg.header.stamp)):
            self.get_logger().warn(warning)
        if self._camera_stamps.arrival:
            msg.header.stamp = self.get_clock().now().to_msg()

    @property
    def arrival_stamps(self) -> bool:
        return self._camera_stamps.arrival

    @property
    def max_rate_hz(self) -> float:
        return self._rate.max_rate_hz

    def _on_frame_error(self, e: Exception) -> None:
        self.get_logger().error(f"frame processing failed: {e!r}", throttle_duration_sec=5.0)

    @property
    def dropped(self) -> int:
        return self._dropped_before + (self._frames.dropped if self._frames is not None else 0)

    def _process(self, item) -> None:
        msg, received_at = item
        pipeline = self.pipeline  # once: cleanup may drop it while a slow frame finishes
        if pipeline is None:
            return
        stamp = self._stamps.add(msg.header.stamp)
        take, restarted = self._rate.admit(stamp)
        if restarted:
            self.get_logger().info("camera time jumped back (bag replayed?): restarting the stream")
        if not take:
            self.rate_skipped += 1
            self._skipped_since_publish += 1
            return
        try:
            rgb = self._convert(msg)
        except ImageConversionError as e:
            self.malformed += 1
            self.get_logger().warn(f"malformed image ({self.malformed} so far): {e}", throttle_duration_sec=5.0)
            return
        t_conv = time.perf_counter()
        try:
            result = pipeline.process(rgb, stamp)
        except NonFiniteOutput as e:
            self.invalid += 1
            self.get_logger().error(f"{e} ({self.invalid} frames so far)", throttle_duration_sec=5.0)
            return
        if result is None:
            self.stale += 1
            self.get_logger().warn("image stamp not newer than the previous frame; skipped "
                                   f"({self.stale} so far)", throttle_duration_sec=5.0)
            return
        self._rate.processed(stamp)
        header = msg.header  # stamp and frame_id of the newest frame, from the camera
        model_id = pipeline.model_id
        embedding = result.embedding.tolist()
        # the reading and the action first: decoder_node holds an event until they arrive
        if result.reading is not None:
            r = result.reading
            self.reading_pub.publish(WorldState(
                header=header, labels=[r.caption], scores=[r.confidence], probabilities=[r.confidence],
                model_id=model_id, embedding=np.asarray(r.embedding, dtype=np.float32).tolist()))
        if result.action is not None:
            a = result.action
            self.action_pub.publish(ActionEstimate(
                header=header, before_stamp=self._stamps.get(a.before_stamp), before_state=a.before_state,
                after_state=a.after_state, actions=a.ranked.labels, scores=a.ranked.scores,
                probabilities=a.ranked.probabilities, model_id=model_id))
        self.embedding_pub.publish(SemanticEmbedding(
            header=header, window_start=self._stamps.get(result.window_start), window_frames=result.window_frames,
            frames_skipped=self._skipped_since_publish, query=pipeline.world.queries.state,
            model_id=model_id, embedding=embedding))
        published_at = time.perf_counter()
        self._skipped_since_publish = 0
        self.world_state_pub.publish(WorldState(
            header=header, labels=result.state.labels, scores=result.state.scores,
            probabilities=result.state.probabilities, model_id=model_id, embedding=embedding))
        self.processed += 1
        self.latencies_ms.append((published_at - received_at) * 1e3)
        self.stage_ms.append({"conversion": (t_conv - received_at) * 1e3, **result.timings_ms})

    # ---- services ----------------------------------------------------------------
    def _inactive_problem(self) -> str | None:
        state = lifecycle_state(self)
        return None if state == "active" and self.pipeline is not None else \
            f"{NODE_NAME} is {state}, not active (ros2 lifecycle set {self.get_fully_qualified_name()} ...)"

    def _on_predict_outcome(self, request, response):
        candidates = list(request.candidates)
        problem = self._inactive_problem() or self._limits.outcome_problem(request.action, candidates) or \
            self._no_frame_problem()
        if problem is None:
            try:
                with self._text_lock:
                    self.pipeline.encode_texts_unlocked(candidates)  # the slow part, while frames go on
                    ranked, stamp = self.pipeline.predict_outcome(request.action, candidates or None)
            except NonFiniteOutput as e:
                problem = str(e)
        response.success, response.message = problem is None, problem or ""
        if problem is None:
            response.outcome, response.confidence = ranked.labels[0], ranked.probabilities[0]
            response.ranked_candidates, response.scores = ranked.labels, ranked.scores
            response.embedding = ranked.embedding.tolist()
            response.stamp = self._stamps.get(stamp)
        return response

    def _on_ask(self, request, response):
        candidates = list(request.candidates)
        response.answer_index = -1
        problem = self._inactive_problem() or self._limits.ask_problem(request.question, candidates) or \
            self._no_frame_problem()
        if problem is None:
            try:
                with self._text_lock:
                    self.pipeline.encode_texts_unlocked(candidates)  # the slow part, while frames go on
                    ranked, stamp = self.pipeline.ask(request.question, candidates)
            except NonFiniteOutput as e:
                problem = str(e)
        response.success, response.message = problem is None, problem or ""
        if problem is None:
            score, prob = dict(zip(ranked.labels, ranked.scores)), dict(zip(ranked.labels, ranked.probabilities))
            response.answer = ranked.labels[0]
            response.answer_index = candidates.index(ranked.labels[0])
            response.scores = [score[c] for c in candidates]  # request order
            response.probabilities = [prob[c] for c in candidates]
            response.stamp = self._stamps.get(stamp)
        return response

    def _no_frame_problem(self) -> str | None:
        return None if self.pipeline.has_frames() else "no camera frame received yet"

    # ---- health ------------------------------------------------------------------
    @property
    def lost(self) -> int:
        return self._lost.lost

    def stats(self) -> dict:
        """Every camera frame is in one of these: received = processed + dropped
        (replaced while inference was busy) + rate_skipped (max_rate_hz) +
        malformed + stale + invalid (the model's output not finite) (+ 1 in
        flight); lost = never received (stamp gaps)."""
        return {"received": self.received, "processed": self.processed, "dropped": self.dropped,
                "malformed": self.malformed, "stale": self.stale, "rate_skipped": self.rate_skipped,
                "invalid": self.invalid, "lost": self.lost}

    def _publish_diagnostics(self) -> None:
        stats = self.stats()
        rates = self._health.rates(stats)
        state = lifecycle_state(self)
        model_id = self.pipeline.model_id if self.pipeline is not None else ""
        if state != "active":  # a managed node that is not active is not expected to take images
            self._diagnostics_pub.publish(diagnostic_array(
                self, f"{self.get_fully_qualified_name()}: images", model_id, 0,
                f"{state}: not taking images", {"lifecycle_state": state, **stats, "model_id": model_id}))
            return
        p50, p95 = recent_latency(self.latencies_ms, max(1, round(rates["processed"])) if rates["processed"] else 0)
        period = self._lost.period_s
        camera_hz = 1.0 / period if period else 0.0
        level, message = image_status(rates, self.received, self._health.silence_s(), self.stale_after_s, camera_hz,
                                      p95, self.latency_budget_ms)
        values = {"lifecycle_state": state, "received_rate_hz": rates["received"],
                  "processed_rate_hz": rates["processed"], "camera_rate_hz": camera_hz, **stats,
                  "latency_p50_ms": p50, "latency_p95_ms": p95, "model_id": model_id,
                  "warm_up_ms": self.warm_up_ms, "arrival_stamps": self.arrival_stamps}
        self._diagnostics_pub.publish(diagnostic_array(self, f"{self.get_fully_qualified_name()}: images",
                                                       model_id, level, message, values))

    def destroy_node(self):
        self._release()
        self._bank_worker.shutdown(wait=False, cancel_futures=True)
        return super().destroy_node()


def main(args=None) -> None:
    # One executor thread: callbacks only queue frames and answer services; the
    # frame worker is its own thread. A second executor thread busy-polling in
    # Python starved the worker of the GIL at 30 Hz (seconds-long stalls in the
    # backbone step; docs/design.md).
    run_node(PerceptionNode, NODE_NAME, args)


if __name__ == "__main__":
    main()
