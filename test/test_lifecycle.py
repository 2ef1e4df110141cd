"""perception_node and decoder_node as managed (lifecycle) nodes, driven
through their lifecycle services over DDS (what `ros2 lifecycle set` and a
lifecycle manager call): configure loads the model, activate subscribes,
deactivate unsubscribes and keeps the model, cleanup frees it."""
import gc
import threading
import time
import weakref

import numpy as np
import pytest

from conftest import ros_messages_available

pytestmark = pytest.mark.skipif(not ros_messages_available(), reason="messages not built (make build)")

CAMERA = "/lc/camera/image_raw"


@pytest.fixture(scope="module")
def ros():
    import rclpy

    rclpy.init()
    yield rclpy
    rclpy.shutdown()


def wait_for(condition, timeout=20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


class Managed:
    """A node under test spinning in the background + a driver node with its
    lifecycle service clients."""

    def __init__(self, rclpy, node):
        from lifecycle_msgs.srv import ChangeState, GetState
        from rclpy.executors import SingleThreadedExecutor

        self.node = node
        self.driver = rclpy.create_node(f"lc_driver_{node.get_name()}")
        fqn = node.get_fully_qualified_name()
        self._change = self.driver.create_client(ChangeState, f"{fqn}/change_state")
        self._get = self.driver.create_client(GetState, f"{fqn}/get_state")
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(node)
        self.executor.add_node(self.driver)
        threading.Thread(target=self.executor.spin, daemon=True).start()
        assert self._change.wait_for_service(10) and self._get.wait_for_service(10)

    def _call(self, client, request):
        future = client.call_async(request)
        assert wait_for(future.done, 60), "no answer from the lifecycle service"
        return future.result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self._call(self._get, GetState.Request()).current_state.label

    def change(self, label: str) -> bool:
        from lifecycle_msgs.srv import ChangeState

        request = ChangeState.Request()
        request.transition.label = label
        return self._call(self._change, request).success

    def close(self):
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self.driver.destroy_node()


def perception(rclpy, **params):
    from rclpy.parameter import Parameter

    from vljepa_ros.ros.perception_node import PerceptionNode

    overrides = [Parameter(k, value=v) for k, v in {"autostart": False, **params}.items()]
    return Managed(rclpy, PerceptionNode(cli_args=["--ros-args", "-r", f"image:={CAMERA}"],
                                         parameter_overrides=overrides))


def frame(k: int):
    from sensor_msgs.msg import Image

    rgb = np.random.default_rng(k).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    msg = Image(height=96, width=128, step=128 * 3, encoding="rgb8", data=rgb.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec = 100 + k // 15, (k % 15) * 66_666_666
    return msg


def test_perception_node_goes_through_its_lifecycle(ros):
    from sensor_msgs.msg import Image

    from vljepa_ros.msg import SemanticEmbedding, WorldState
    from vljepa_ros.ros.common import RELIABLE_QOS, SENSOR_QOS_LATEST
    from vljepa_ros.srv import Ask

    m = perception(ros)
    node = m.node
    camera = m.driver.create_publisher(Image, CAMERA, SENSOR_QOS_LATEST)
    embeddings, states = [], []
    m.driver.create_subscription(SemanticEmbedding, "/perception_node/embedding", embeddings.append, RELIABLE_QOS)
    m.driver.create_subscription(WorldState, "/perception_node/world_state", states.append, RELIABLE_QOS)
    ask = m.driver.create_client(Ask, "/perception_node/ask")
    sent = [0]

    def stream(n):
        for _ in range(n):
            camera.publish(frame(sent[0]))
            sent[0] += 1
            time.sleep(0.1)

    def stream_until(condition, timeout=60.0):
        """Frames until ``condition()``: a loaded CPU drops some in the one-slot mailbox."""
        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            stream(1)
        return condition()

    from diagnostic_msgs.msg import DiagnosticArray

    from vljepa_ros.ros.common import DIAGNOSTICS_QOS

    statuses = []
    m.driver.create_subscription(DiagnosticArray, "/diagnostics", lambda msg: statuses.extend(
        st for st in msg.status if st.name == "/perception_node: images"), DIAGNOSTICS_QOS)

    try:
        # unconfigured: no model, no camera subscription, services refuse
        assert m.state() == "unconfigured" and node.pipeline is None
        assert m.driver.count_subscribers(CAMERA) == 0
        assert wait_for(lambda: statuses, 10)  # told to wait: OK, not a stale camera
        assert statuses[-1].level == b"\x00" and statuses[-1].message == "unconfigured: not taking images"
        assert ask.wait_for_service(10)
        answer = m._call(ask, Ask.Request(question="what is on the table?", candidates=["a ball", "nothing"]))
        assert not answer.success and "unconfigured" in answer.message
        # a parameter set while unconfigured is used by configure
        from rclpy.parameter import Parameter

        assert node.set_parameters([Parameter("world_state_top_k", value=2)])[0].successful

        assert m.change("configure") and m.state() == "inactive"
        pipeline = node.pipeline
        assert pipeline is not None and node.warm_up_ms > 0
        assert m.driver.count_subscribers(CAMERA) == 0  # inactive: the model is ready, no input yet

        assert m.change("activate") and m.state() == "active"
        assert wait_for(lambda: m.driver.count_subscribers(CAMERA) == 1, 10)
        assert stream_until(lambda: len(embeddings) >= 3 and states)
        assert all(len(s.labels) == 2 for s in states)  # world_state_top_k from before configure

        assert m.change("deactivate") and m.state() == "inactive"
        assert wait_for(lambda: m.driver.count_subscribers(CAMERA) == 0, 10)
        assert node.pipeline is pipeline  # deactivate keeps the model
        time.sleep(0.3)
        seen = len(embeddings)
        stream(5)
        time.sleep(0.5)
        assert len(embeddings) == seen  # no input while inactive
        answer = m._call(ask, Ask.Request(question="what is on the table?", candidates=["a ball", "nothing"]))
        assert not answer.success and "inactive" in answer.message

        assert m.change("activate")
        assert wait_for(lambda: m.driver.count_subscribers(CAMERA) == 1, 10)
        assert stream_until(lambda: len(embeddings) > seen)
        assert embeddings[seen].window_frames == 1  # a fresh stream: no window spans the inactive time

        assert m.change("deactivate") and m.change("cleanup") and m.state() == "unconfigured"
        freed = weakref.ref(pipeline)
        del pipeline
        gc.collect()
        assert node.pipeline is None and freed() is None  # cleanup frees the model
        assert m.change("configure") and m.change("activate")  # and it comes back
        assert wait_for(lambda: m.driver.count_subscribers(CAMERA) == 1, 10)
        processed = node.processed
        assert stream_until(lambda: node.processed > processed)
    finally:
        m.close()


def test_a_failed_configure_leaves_the_node_unconfigured_with_the_reason(ros, tmp_path):
    missing = tmp_path / "no_model"
    m = perception(ros, model_path=str(missing))
    try:
        assert m.state() == "unconfigured"
        assert not m.change("configure")
        assert m.state() == "unconfigured" and m.node.pipeline is None
        assert str(missing) in m.node.configure_error  # the log line names the file
    finally:
        m.close()


def test_autostart_is_active_and_a_failed_start_raises(ros, tmp_path):
    from rclpy.parameter import Parameter

    from vljepa_ros.ros.perception_node import PerceptionNode

    with pytest.raises(RuntimeError, match="no_model"):  # run_node: FATAL, exit 2
        PerceptionNode(parameter_overrides=[Parameter("model_path", value=str(tmp_path / "no_model"))])
    m = Managed(ros, PerceptionNode(cli_args=["--ros-args", "-r", f"image:={CAMERA}"]))
    try:
        assert m.state() == "active" and m.driver.count_subscribers(CAMERA) == 1
    finally:
        m.close()


def test_decoder_node_subscribes_only_while_active(ros):
    from rclpy.parameter import Parameter

    from vljepa_ros.msg import SemanticEmbedding, SemanticEvent
    from vljepa_ros.ros.common import RELIABLE_QOS
    from vljepa_ros.ros.decoder_node import DecoderNode

    node = DecoderNode(cli_args=["--ros-args", "-r", "embedding:=/lc/embedding", "-r", "semantic_events:=/lc/events"],
                       parameter_overrides=[Parameter("autostart", value=False),
                                            Parameter("decode_mode", value="retrieval")])
    m = Managed(ros, node)
    events = []
    m.driver.create_subscription(SemanticEvent, "/lc/events", events.append, RELIABLE_QOS)
    pub = m.driver.create_publisher(SemanticEmbedding, "/lc/embedding", 100)
    try:
        assert m.state() == "unconfigured" and node.stream is None
        assert m.driver.count_subscribers("/lc/embedding") == 0
        assert m.change("configure") and node.stream is not None
        assert m.driver.count_subscribers("/lc/embedding") == 0
        assert m.change("activate")
        assert wait_for(lambda: m.driver.count_subscribers("/lc/embedding") == 1, 10)
        e = np.zeros(node.embed_dim, dtype=np.float32)
        e[0] = 1.0
        assert wait_for(lambda: pub.get_subscription_count() == 1, 10)
        for k in range(40):  # 4 s of one still scene
            msg = SemanticEmbedding(model_id=node.model_id, embedding=e.tolist())
            msg.header.stamp.sec, msg.header.stamp.nanosec = 5 + k // 10, (k % 10) * 100_000_000
            pub.publish(msg)
            time.sleep(0.01)
        assert wait_for(lambda: len(events) == 1)  # the stream's INITIAL event
        assert events[0].kind == SemanticEvent.KIND_INITIAL
        assert m.change("deactivate")
        assert wait_for(lambda: m.driver.count_subscribers("/lc/embedding") == 0, 10)
        assert m.change("cleanup") and node.stream is None
    finally:
        m.close()
