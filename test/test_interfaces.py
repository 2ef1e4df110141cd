"""The custom messages and services: generated, importable, and exact across
two OS processes over Fast DDS (real rclpy, real DDS, no mocks)."""
import json
import os
import pathlib
import select
import subprocess
import sys
import time

import pytest

from conftest import ros_messages_available

pytestmark = pytest.mark.skipif(
    not ros_messages_available(),
    reason="vljepa_ros messages not built: run `make build` (colcon) and source install/setup.bash",
)

HERE = pathlib.Path(__file__).resolve().parent

# Values chosen to be exactly representable in float32, with every field set
# away from its default so a dropped or mis-ordered field shows up.
STAMP = {"sec": 1_700_000_123, "nanosec": 456_789_000}
HEADER = {"stamp": STAMP, "frame_id": "camera_optical_frame"}
EMBEDDING = [0.5, -0.25, 0.125, 0.0, 1.0, -1.0, 0.75, 0.0625]

MESSAGES = {
    "SemanticEmbedding": {
        "header": HEADER,
        "window_start": {"sec": 1_700_000_122, "nanosec": 999_000_000},
        "window_frames": 4,
        "frames_skipped": 3,
        "query": "what is on the table?",
        "model_id": "tabletop@0123456789ab",
        "embedding": EMBEDDING,
    },
    "WorldState": {
        "header": HEADER,
        "labels": ["a red cube on the left; the lamp is on", "the table is empty; the lamp is off"],
        "scores": [0.875, -0.5],
        "probabilities": [0.75, 0.25],
        "model_id": "tabletop@0123456789ab",
        "embedding": EMBEDDING,
    },
    "ActionEstimate": {
        "header": HEADER,
        "before_stamp": {"sec": 1_700_000_120, "nanosec": 5},
        "before_state": "the lamp is on",
        "after_state": "the lamp is off",
        "actions": ["turn the lamp off", "push the red cube to the left"],
        "scores": [0.9375, 0.125],
        "probabilities": [0.875, 0.125],
        "model_id": "tabletop@0123456789ab",
    },
    "SemanticEvent": {
        "kind": 2,
        "header": HEADER,
        "previous_stamp": {"sec": 1_700_000_100, "nanosec": 1},
        "text": "the lamp is off",
        "previous_text": "the lamp is on",
        "change_score": 0.5,
        "confidence": 0.875,
        "action": "turn the lamp off",
        "action_confidence": 0.75,
        "has_camera_pose": True,
        "camera_pose": {
            "header": {"stamp": STAMP, "frame_id": "world"},
            "pose": {
                "position": {"x": 1.5, "y": -0.25, "z": 2.0},
                "orientation": {"x": 0.0, "y": 0.5, "z": 0.0, "w": 0.875},
            },
        },
        "model_id": "tabletop@0123456789ab",
        "embedding": EMBEDDING,
    },
    "DecodeStats": {
        "header": HEADER,
        "embeddings_seen": 12_345_678_901,
        "decodes": 42,
        "events": 40,
        "heartbeats": 2,
        "rejected": 1,
        "decode_ratio": 0.125,
        "mean_decode_ms": 12.5,
        "current_text": "a red cube on the left",
    },
}

SERVICES = {
    "PredictOutcome": (
        {"action": "push the red cube to the left", "candidates": ["red cube on the left", "red cube on the right"]},
        {
            "success": True,
            "message": "",
            "outcome": "red cube on the left",
            "confidence": 0.75,
            "ranked_candidates": ["red cube on the left", "red cube on the right"],
            "scores": [0.5, -0.125],
            "embedding": EMBEDDING,
            "stamp": STAMP,
        },
    ),
    "Ask": (
        {"question": "is the lamp on?", "candidates": ["yes", "no"]},
        {
            "success": True,
            "message": "",
            "answer": "no",
            "answer_index": 1,
            "scores": [0.25, 0.75],
            "probabilities": [0.375, 0.625],
            "stamp": STAMP,
        },
    ),
}


def _peer(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))
    return subprocess.Popen(
        [sys.executable, "-m", "ros_helpers.peer", *args],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _readline(proc, timeout):
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise AssertionError(f"peer printed nothing in {timeout}s; stderr: {proc.stderr.read()}")
    return proc.stdout.readline().strip()


@pytest.fixture(scope="module")
def node():
    import rclpy

    rclpy.init()
    node = rclpy.create_node("vljepa_test_driver")
    yield node
    node.destroy_node()
    rclpy.shutdown()


def test_messages_generated_with_documented_constants():
    from vljepa_ros.msg import SemanticEvent

    assert (SemanticEvent.KIND_CHANGE, SemanticEvent.KIND_INITIAL, SemanticEvent.KIND_HEARTBEAT) == (0, 1, 2)


@pytest.mark.parametrize("type_name", sorted(MESSAGES))
def test_message_round_trips_between_processes(node, type_name):
    import rclpy
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy

    import vljepa_ros.msg as msgs
    from ros_helpers.convert import fill, to_plain

    msg_type = getattr(msgs, type_name)
    sent = fill(msg_type(), MESSAGES[type_name])
    topic = f"/vljepa_test/{type_name.lower()}"
    pub = node.create_publisher(msg_type, topic, QoSProfile(depth=10, reliability=QoSReliabilityPolicy.RELIABLE))
    peer = _peer("echo", f"vljepa_ros/msg/{type_name}", topic)
    try:
        assert _readline(peer, 30) == "READY"
        deadline = time.monotonic() + 30
        while pub.get_subscription_count() == 0:
            assert time.monotonic() < deadline, "the subscriber process was never discovered"
            rclpy.spin_once(node, timeout_sec=0.05)
        # Publish until the peer has printed what it received (reliable QoS, but
        # a message sent in the instant of discovery can still miss the reader).
        line = ""
        while not line:
            pub.publish(sent)
            ready, _, _ = select.select([peer.stdout], [], [], 0.2)
            if ready:
                line = peer.stdout.readline().strip()
            assert time.monotonic() < deadline, f"no message echoed; stderr: {peer.stderr.read()}"
        assert peer.wait(timeout=10) == 0
    finally:
        peer.kill()
        node.destroy_publisher(pub)
    received = json.loads(line)
    assert received == to_plain(sent)
    # And the values are the ones we meant to send (fill did not drop a field).
    for field, value in MESSAGES[type_name].items():
        assert received[field] == value, field


@pytest.mark.parametrize("type_name", sorted(SERVICES))
def test_service_round_trips_between_processes(node, type_name):
    import rclpy

    import vljepa_ros.srv as srvs
    from ros_helpers.convert import fill, to_plain

    srv_type = getattr(srvs, type_name)
    request_fields, response_fields = SERVICES[type_name]
    name = f"/vljepa_test/{type_name.lower()}"
    client = node.create_client(srv_type, name)
    peer = _peer("serve", f"vljepa_ros/srv/{type_name}", name)
    try:
        peer.stdin.write(json.dumps(response_fields) + "\n")
        peer.stdin.flush()
        assert _readline(peer, 30) == "READY"
        assert client.wait_for_service(timeout_sec=30), "the service process was never discovered"
        request = fill(srv_type.Request(), request_fields)
        future = client.call_async(request)
        rclpy.spin_until_future_complete(node, future, timeout_sec=30)
        assert future.done(), "no response within 30 s"
        response = future.result()
        served_request = json.loads(_readline(peer, 30))
        assert peer.wait(timeout=10) == 0
    finally:
        peer.kill()
        node.destroy_client(client)
    assert served_request == request_fields
    assert to_plain(response) == response_fields
