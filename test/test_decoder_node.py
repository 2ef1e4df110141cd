"""decoder_node with real rclpy over DDS on synthetic embedding streams:
exactly one event per change, none in static stretches, heartbeats when on."""
import threading
import time

import numpy as np
import pytest

from conftest import ros_messages_available

pytestmark = pytest.mark.skipif(not ros_messages_available(), reason="messages not built (make build)")

PHRASES = ["a red cube on the front left; the lamp is on",
           "a red cube on the front left; the lamp is off",
           "a blue ball on the back right; the lamp is off",
           "the table is empty; the lamp is off"]
FPS = 15.0


@pytest.fixture(scope="module")
def ros():
    import rclpy

    rclpy.init()
    yield rclpy
    rclpy.shutdown()


def phrase_threshold():
    """A change threshold the test phrases clear with a margin: this tests the
    node's event logic, not how far apart the model puts two captions."""
    import torch

    from vljepa_ros.checkpoint import load_model

    model = load_model().model
    with torch.no_grad():
        e = model.encode_text(PHRASES)
    distances = 1.0 - (e @ e.T)
    return min(0.1, float(distances[~torch.eye(len(PHRASES), dtype=torch.bool)].min() * 0.4))


class DecoderHarness:
    def __init__(self, rclpy, **params):
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.parameter import Parameter

        from vljepa_ros.msg import DecodeStats, SemanticEmbedding, SemanticEvent
        from vljepa_ros.ros.common import RELIABLE_QOS
        from vljepa_ros.ros.decoder_node import DecoderNode

        defaults = {"decode_mode": "retrieval", "text_bank": PHRASES, "stats_rate_hz": 20.0,
                    "threshold": phrase_threshold(), "hysteresis": 0.0}
        self.node = DecoderNode(cli_args=["--ros-args", "-r", "embedding:=/vd/embedding",
                                          "-r", "semantic_events:=/vd/events", "-r", "action:=/vd/action",
                                          "-r", "state_reading:=/vd/state_reading"],
                                parameter_overrides=[Parameter(k, value=v) for k, v in {**defaults, **params}.items()])
        self.driver = rclpy.create_node("vd_driver")
        self.pub = self.driver.create_publisher(SemanticEmbedding, "/vd/embedding", 100)
        self.events, self.stats = [], []
        self.driver.create_subscription(SemanticEvent, "/vd/events", self.events.append, RELIABLE_QOS)
        self.driver.create_subscription(DecodeStats, "/decoder_node/stats", self.stats.append, RELIABLE_QOS)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        self.executor.add_node(self.driver)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        deadline = time.monotonic() + 20
        while self.pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        model = self.node.stream.checkpoint.model
        import torch

        with torch.no_grad():
            self.targets = model.encode_text(PHRASES).numpy()

    def stream(self, segments, seed=0, noise=0.002, transition_s=0.6):
        """segments: [(phrase index, seconds)]; between segments ~transition_s of
        wandering motion (an arm moving). Returns the true change times."""
        rng = np.random.default_rng(seed)
        t, changes, sent = 0.0, [], 0
        prev = None
        for idx, seconds in segments:
            if prev is not None:
                changes.append(t)
                wander = rng.normal(size=self.targets.shape[1]).astype(np.float32)
                wander /= np.linalg.norm(wander)
                for j in range(int(transition_s * FPS)):
                    u = (j + 1) / (transition_s * FPS + 1)
                    e = (1 - u) * self.targets[prev] + u * self.targets[idx] + 0.3 * np.sin(np.pi * u) * wander
                    self._send(e, t)
                    t += 1 / FPS
                    sent += 1
            for _ in range(int(seconds * FPS)):
                e = self.targets[idx] + noise * rng.normal(size=self.targets.shape[1]).astype(np.float32)
                self._send(e, t)
                t += 1 / FPS
                sent += 1
            prev = idx
        deadline = time.monotonic() + 20
        while self.node.embeddings_seen < sent:
            assert time.monotonic() < deadline, f"{self.node.embeddings_seen}/{sent} embeddings arrived"
            time.sleep(0.02)
        time.sleep(0.3)
        return changes

    def _send(self, e, t):
        from builtin_interfaces.msg import Time

        from vljepa_ros.msg import SemanticEmbedding

        e = e / np.linalg.norm(e)
        msg = SemanticEmbedding(model_id=self.node.model_id, embedding=e.astype(np.float32).tolist())
        s = 1_700_000_000 + t
        msg.header.stamp = Time(sec=int(s), nanosec=int(round((s - int(s)) * 1e9)))
        msg.header.frame_id = "vd_camera"
        self.pub.publish(msg)
        time.sleep(0.002)  # a reliable queue of 100 does not overflow

    def close(self):
        self.executor.shutdown(timeout_sec=2)
        self.node.destroy_node()
        self.driver.destroy_node()


def test_one_event_per_change_none_in_static_stretches(ros):
    from vljepa_ros.msg import SemanticEvent

    h = DecoderHarness(ros)
    try:
        changes = h.stream([(0, 4.0), (1, 5.0), (2, 3.0), (3, 6.0), (0, 4.0)])
        kinds = [e.kind for e in h.events]
        assert kinds[0] == SemanticEvent.KIND_INITIAL and h.events[0].text == PHRASES[0]
        change_events = [e for e in h.events if e.kind == SemanticEvent.KIND_CHANGE]
        assert len(change_events) == len(changes), [(e.text, e.header.stamp.sec) for e in h.events]
        for e, t_true, idx in zip(change_events, changes, [1, 2, 3, 0]):
            t = e.header.stamp.sec + e.header.stamp.nanosec * 1e-9 - 1_700_000_000
            assert abs(t - t_true) <= 0.5, (t, t_true)  # stamp = when the new state began
            assert e.text == PHRASES[idx]
            assert 0.0 < e.change_score <= 2.0 and 0.0 <= e.confidence <= 1.0
            assert e.header.frame_id == "vd_camera"
            assert abs(np.linalg.norm(e.embedding) - 1.0) < 1e-3
        assert change_events[0].previous_text == PHRASES[0]
        # the decoder ran once per event: far fewer decodes than embeddings
        assert h.node.stream.decodes == len(h.events)
        deadline = time.monotonic() + 3
        while (not h.stats or h.stats[-1].embeddings_seen < h.node.embeddings_seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        last = h.stats[-1]
        assert last.decodes == len(h.events) and last.events == len(h.events)
        assert 0 < last.decode_ratio < 0.05
    finally:
        h.close()


def test_heartbeat_after_max_silence(ros):
    from vljepa_ros.msg import SemanticEvent

    h = DecoderHarness(ros, max_silence_s=3.0)
    try:
        h.stream([(2, 10.0)])
        kinds = [e.kind for e in h.events]
        assert kinds[0] == SemanticEvent.KIND_INITIAL
        heartbeats = [e for e in h.events if e.kind == SemanticEvent.KIND_HEARTBEAT]
        assert 2 <= len(heartbeats) <= 3, kinds  # ~ every 3 s over 10 s
        assert all(e.text == PHRASES[2] for e in heartbeats)
        assert SemanticEvent.KIND_CHANGE not in kinds
    finally:
        h.close()


def test_rejects_foreign_embeddings_and_invalid_parameters(ros):
    from rclpy.parameter import Parameter

    from vljepa_ros.msg import SemanticEmbedding

    h = DecoderHarness(ros)
    try:
        h.pub.publish(SemanticEmbedding(model_id="other@000000000000", embedding=[1.0] * 256))
        h.pub.publish(SemanticEmbedding(model_id=h.node.model_id, embedding=[1.0, 0.0]))
        deadline = time.monotonic() + 5
        while h.node.rejected < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert h.node.rejected == 2 and not h.events
        result = h.node.set_parameters([Parameter("threshold", value=-1.0)])[0]
        assert not result.successful
        result = h.node.set_parameters([Parameter("decode_mode", value="telepathy")])[0]
        assert not result.successful and "decode_mode" in result.reason
        result = h.node.set_parameters([Parameter("threshold", value=0.25)])[0]
        assert result.successful and h.node.stream.config.threshold == 0.25
    finally:
        h.close()


def test_change_events_wait_for_actions_only_while_someone_publishes_them(ros):
    from vljepa_ros.msg import ActionEstimate

    h = DecoderHarness(ros)
    try:
        assert not h.node.stream.expect_actions  # nothing publishes /vd/action yet
        publisher = h.driver.create_publisher(ActionEstimate, "/vd/action", 10)
        deadline = time.monotonic() + 5  # ~/stats at 20 Hz re-checks the publishers
        while not h.node.stream.expect_actions and time.monotonic() < deadline:
            time.sleep(0.02)
        assert h.node.stream.expect_actions
        h.driver.destroy_publisher(publisher)
        deadline = time.monotonic() + 5
        while h.node.stream.expect_actions and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not h.node.stream.expect_actions
    finally:
        h.close()


def test_a_change_event_waiting_for_its_action_is_released_when_the_stream_stops(ros):
    from vljepa_ros.msg import ActionEstimate, SemanticEvent

    h = DecoderHarness(ros, action_wait_s=10.0)  # longer than the stream: only the wall-clock flush can release it
    try:
        h.driver.create_publisher(ActionEstimate, "/vd/action", 10)  # estimates could come, so events wait
        deadline = time.monotonic() + 5
        while not h.node.stream.expect_actions and time.monotonic() < deadline:
            time.sleep(0.02)
        h.stream([(0, 3.0), (1, 3.0)])  # the change is decided ~1 s into the 3 s segment: under 10 s of camera wait
        deadline = time.monotonic() + 5  # released ~1 s (wall) after the wait began
        while len(h.events) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e.kind for e in h.events] == [SemanticEvent.KIND_INITIAL, SemanticEvent.KIND_CHANGE]
        assert h.events[1].text == PHRASES[1] and h.events[1].action == ""
    finally:
        h.close()


def test_events_say_what_perception_read_on_the_deciding_frame(ros):
    # perception's ~/state_reading names another phrase than the embedding stream
    # shows: the events must carry the reading's text (decoded from its embedding)
    from builtin_interfaces.msg import Time

    from vljepa_ros.msg import SemanticEvent, WorldState

    h = DecoderHarness(ros)
    try:
        readings = h.driver.create_publisher(WorldState, "/vd/state_reading", 100)
        deadline = time.monotonic() + 5
        while not h.node.stream.expect_readings and time.monotonic() < deadline:
            time.sleep(0.02)
        assert h.node.stream.expect_readings
        rng = np.random.default_rng(0)
        t = 0.0
        for idx in (0, 2):
            for _ in range(int(3.0 * FPS)):  # the reading first, as perception publishes
                read = (idx + 1) % len(PHRASES)
                msg = WorldState(labels=[PHRASES[read]], scores=[0.6], probabilities=[0.6], model_id=h.node.model_id,
                                 embedding=h.targets[read].astype(np.float32).tolist())
                s = 1_700_000_000 + t
                msg.header.stamp = Time(sec=int(s), nanosec=int(round((s - int(s)) * 1e9)))
                readings.publish(msg)
                h._send(h.targets[idx] + 0.002 * rng.normal(size=h.targets.shape[1]).astype(np.float32), t)
                t += 1 / FPS
        deadline = time.monotonic() + 10
        while len(h.events) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [(e.kind, e.text) for e in h.events] == [(SemanticEvent.KIND_INITIAL, PHRASES[1]),
                                                        (SemanticEvent.KIND_CHANGE, PHRASES[3])]
        assert h.node.stream.texts_read == 2 and h.node.stream.decodes == 0
    finally:
        h.close()


def test_diagnostics_report_the_embedding_stream(ros):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus

    from vljepa_ros.ros.common import DIAGNOSTICS_QOS

    h = DecoderHarness(ros, stale_after_s=1.0)
    statuses = []
    h.driver.create_subscription(DiagnosticArray, "/diagnostics",
                                 lambda m: statuses.extend(s for s in m.status if s.name == "/decoder_node: events"),
                                 DIAGNOSTICS_QOS)
    try:
        deadline = time.monotonic() + 5  # stale_after_s = 1 s after activation: a WARN within a few statuses
        while not (statuses and statuses[-1].level == DiagnosticStatus.WARN) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert statuses and statuses[-1].level == DiagnosticStatus.WARN  # nothing received yet
        assert "no embedding received yet" in statuses[-1].message
        h.stream([(0, 2.0), (1, 2.0)])
        n = len(statuses)
        deadline = time.monotonic() + 3
        while len(statuses) == n and time.monotonic() < deadline:
            time.sleep(0.05)
        values = {kv.key: kv.value for kv in statuses[-1].values}
        assert int(values["embeddings_seen"]) == h.node.embeddings_seen and int(values["events"]) == len(h.events)
        assert values["model_id"] == h.node.model_id and "decode_ratio" in values
    finally:
        h.close()
