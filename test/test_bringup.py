"""The in-process bringup (what runs where the ROS launch tools are missing):
the same nodes, the same parameter file, one process; starts, runs a short
simulated episode end to end, and stops cleanly."""
import threading
import time

import pytest

from conftest import ros_messages_available

pytestmark = pytest.mark.skipif(not ros_messages_available(), reason="messages not built (make build)")


def test_bringup_runs_the_graph_and_stops_cleanly():
    import rclpy

    from vljepa_ros.msg import SemanticEmbedding, SemanticEvent
    from vljepa_ros.ros.bringup import build_graph, default_params_file, destroy_graph, spin_graph
    from vljepa_ros.ros.common import RELIABLE_QOS

    assert default_params_file().exists()
    threads_before = threading.active_count()
    rclpy.init()
    try:
        graph = build_graph(namespace="vb", image_topic="camera/image_raw", use_sim_time=True,
                            sim_camera={"episode_seed": 3, "split": "test", "fps": 15.0, "image_size": 96,
                                        "time_source": "sim", "start_delay_s": 0.5, "max_frames": 45})
        # Parameters came from config/perception.yaml through the /** wildcard, in a namespace.
        assert graph.perception.get_parameter("threshold").value == 0.05  # the shared /** block
        assert graph.decoder.get_parameter("smoothing").value == 0.5
        assert graph.perception.get_fully_qualified_name() == "/vb/perception_node"
        listener = rclpy.create_node("vb_listener", namespace="vb")
        events, embeddings = [], []
        listener.create_subscription(SemanticEvent, "semantic_events", events.append, RELIABLE_QOS)
        listener.create_subscription(SemanticEmbedding, "perception_node/embedding", embeddings.append, RELIABLE_QOS)
        graph.extra.append(listener)
        finished = []

        def done():
            # the camera finished and everything it sent has gone through (a busy
            # machine lags behind the camera; this waits for it, up to 30 s)
            if graph.camera.done and not finished:
                finished.append(time.monotonic())
            if not finished or time.monotonic() - finished[0] < 1.5:
                return False
            drained = graph.decoder.embeddings_seen == graph.perception.processed and events
            return bool(drained) or time.monotonic() - finished[0] > 30

        assert spin_graph(graph, until=done, timeout_s=120), "the episode did not finish"
        assert graph.camera.frames_published == 45
        assert embeddings and graph.perception.processed == len(embeddings)
        assert events and events[0].kind == SemanticEvent.KIND_INITIAL and events[0].text
        assert graph.decoder.embeddings_seen == len(embeddings)
        destroy_graph(graph)
    finally:
        rclpy.try_shutdown()
    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert threading.active_count() <= threads_before, [t.name for t in threading.enumerate()]
