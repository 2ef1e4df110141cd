"""memory_node through real DDS: the node runs in its own OS process, this
process publishes an embedding stream (Y-encoded phrases of the shipped
model), a moving camera pose and an event, then queries it by text. Then the
node is killed with SIGKILL and restarted: every flushed moment is still there."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import REPO_ROOT, ros_messages_available

pytestmark = pytest.mark.skipif(not ros_messages_available(), reason="messages not built (make build)")

PHRASES = ["a red cube on the front left; the lamp is on",
           "a red cube on the front left; the lamp is off",
           "a blue ball on the back right; the lamp is off",
           "the table is empty; the lamp is off"]
SEGMENTS = [0, 1, 2, 0, 3]   # phrase per 3-s segment; the last stays open
FPS, SEG_S, T0 = 15.0, 3.0, 1_000_000_000.0
NS = 1_000_000_000


@pytest.fixture(scope="module")
def targets():
    import torch

    from vljepa_ros.checkpoint import load_model

    ckpt = load_model()
    with torch.no_grad():
        e = ckpt.model.encode_text(PHRASES).numpy()
    d = 1.0 - e @ e.T
    threshold = min(0.1, float(d[~np.eye(len(PHRASES), dtype=bool)].min() * 0.4))
    return ckpt.model_id, e, threshold


def start_node(store, threshold):
    args = [sys.executable, "-m", "vljepa_ros.ros.memory_node", "--ros-args",
            "-r", "__node:=memory_node", "-r", "embedding:=/vm/embedding", "-r", "semantic_events:=/vm/events",
            "-r", "camera_pose:=/vm/camera_pose", "-p", f"memory_dir:={store}", "-p", "pose_source:=topic",
            "-p", f"threshold:={threshold}", "-p", "hysteresis:=0.0"]
    return subprocess.Popen(args, cwd=str(REPO_ROOT), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def call(node, srv_type, name, timeout=60.0, **fields):
    import rclpy

    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
    request = srv_type.Request()
    for k, v in fields.items():
        setattr(request, k, v)
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    node.destroy_client(client)
    assert future.done(), f"{name} did not answer"
    return future.result()


def stamp(t):
    from builtin_interfaces.msg import Time

    ns = int(round(t * NS))
    return Time(sec=ns // NS, nanosec=ns % NS)


def test_memory_node_over_dds_survives_kill_9(tmp_path, targets):
    import rclpy
    from geometry_msgs.msg import PoseStamped

    from vljepa_ros.msg import SemanticEmbedding, SemanticEvent
    from vljepa_ros.srv import LatestMoment, MemoryStats, QueryMemory

    model_id, emb, threshold = targets
    store = tmp_path / "memory"
    proc = start_node(store, threshold)
    rclpy.init()
    node = rclpy.create_node("memory_test_client")
    try:
        stats = call(node, MemoryStats, "/memory_node/stats", timeout=120.0)
        assert stats.success and stats.stored == 0 and stats.model_id == model_id
        emb_pub = node.create_publisher(SemanticEmbedding, "/vm/embedding", 1000)
        pose_pub = node.create_publisher(PoseStamped, "/vm/camera_pose", 1000)
        event_pub = node.create_publisher(SemanticEvent, "/vm/events", 10)
        deadline = time.monotonic() + 30
        while emb_pub.get_subscription_count() == 0 or pose_pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline
            rclpy.spin_once(node, timeout_sec=0.05)
        rng = np.random.default_rng(0)
        starts = []
        n = int(SEG_S * FPS)
        for k, phrase in enumerate(SEGMENTS):
            starts.append(T0 + k * SEG_S)
            for i in range(n):
                t = T0 + k * SEG_S + i / FPS
                for j in range(3):  # ~50 Hz poses, not in step with the camera: x = 1 m/s * time
                    tp = t + j / 45.0 - 0.01
                    pose = PoseStamped()
                    pose.header.stamp, pose.header.frame_id = stamp(tp), "map"
                    pose.pose.position.x, pose.pose.orientation.w = tp - T0, 1.0
                    pose_pub.publish(pose)
                e = emb[phrase] + 0.002 * rng.standard_normal(emb.shape[1]).astype(np.float32)
                msg = SemanticEmbedding(model_id=model_id, embedding=(e / np.linalg.norm(e)).tolist(),
                                        window_frames=1, query="what is on the table?")
                msg.header.stamp, msg.header.frame_id = stamp(t), "camera"
                emb_pub.publish(msg)
                time.sleep(0.004)
            if k == 1:
                event = SemanticEvent(kind=SemanticEvent.KIND_CHANGE, text="the lamp went off",
                                      action="turn the lamp off", action_confidence=0.8, model_id=model_id)
                event.header.stamp = stamp(starts[1])
                event_pub.publish(event)
        deadline = time.monotonic() + 60
        while True:
            stats = call(node, MemoryStats, "/memory_node/stats")
            if stats.stored_this_model == 4 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert stats.stored_this_model == 4 and stats.has_open_moment and stats.pending == 0

        frame = 1.0 / FPS + 1e-6
        r = call(node, QueryMemory, "/memory_node/query", text=PHRASES[1], top_k=1)
        assert r.success and len(r.moments) == 1, r.message
        m = r.moments[0]
        start = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        assert abs(start - starts[1]) <= 2 * frame
        assert m.text == "the lamp went off" and m.action == "turn the lamp off" and m.model_id == model_id
        assert m.has_camera_pose and m.camera_pose.header.frame_id == "map"
        assert m.camera_pose.pose.position.x == pytest.approx(start - T0, abs=1e-6)  # pose at capture time
        latest = call(node, LatestMoment, "/memory_node/latest", text=PHRASES[0])
        assert latest.success
        assert abs(latest.moment.header.stamp.sec + latest.moment.header.stamp.nanosec * 1e-9 - starts[3]) <= 2 * frame
        now = call(node, QueryMemory, "/memory_node/query", text=PHRASES[3], top_k=1).moments[0]
        assert now.is_open  # the current state is answered before it is stored

        bad = call(node, QueryMemory, "/memory_node/query", text="", top_k=3)
        assert not bad.success and bad.message == "query text is empty"
        assert "top_k" in call(node, QueryMemory, "/memory_node/query", text=PHRASES[0], top_k=0).message
        capped = call(node, QueryMemory, "/memory_node/query", text=PHRASES[0], top_k=10**6)
        assert capped.success and "capped" in capped.message
        rev = call(node, QueryMemory, "/memory_node/query", text=PHRASES[0], top_k=3, use_window=True,
                   window_start=stamp(T0 + 10), window_end=stamp(T0))
        assert not rev.success and "reversed" in rev.message

        proc.send_signal(signal.SIGKILL)  # no shutdown: the open moment is lost, the flushed ones must not be
        proc.wait(timeout=30)
        proc = start_node(store, threshold)
        # the killed node's service may linger in discovery: ask until the new one answers
        deadline, stats = time.monotonic() + 180, None
        while stats is None and time.monotonic() < deadline:
            try:
                stats = call(node, MemoryStats, "/memory_node/stats", timeout=10.0)
            except AssertionError:
                assert proc.poll() is None, "memory_node exited after the restart"
        assert stats is not None, "the restarted memory_node never answered"
        assert stats.stored_this_model == 4 and not stats.has_open_moment
        again = call(node, QueryMemory, "/memory_node/query", text=PHRASES[1], top_k=1).moments[0]
        assert again.text == "the lamp went off" and again.camera_pose.pose.position.x == pytest.approx(start - T0,
                                                                                                    abs=1e-6)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        out = proc.stdout.read() if proc.stdout else ""
        if os.environ.get("VLJEPA_TEST_VERBOSE"):
            print(out)
