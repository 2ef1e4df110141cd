"""sim_camera_node over real DDS: the node runs in its own OS process
(``python -m vljepa_ros.ros.sim_camera_node --ros-args ...``) and this process
subscribes, like any consumer of a camera would."""
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed (ROS 2 Jazzy wheels or a ROS install)")

FRAMES = 30
SIZE = 64
FPS = 15.0


def _start_node(*params: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "vljepa_ros.ros.sim_camera_node", "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))


def _stop(proc: subprocess.Popen) -> str:
    from vljepa_ros.ros.bench_runtime import stop_process

    stop_process(proc, timeout=10)
    return proc.stdout.read()


@pytest.fixture(scope="module")
def node():
    rclpy.init()
    n = rclpy.create_node("vljepa_test_sim_camera_listener")
    yield n
    n.destroy_node()
    rclpy.shutdown()


class _Listener:
    """Subscriptions to the camera's topics (SensorDataQoS for the images, as
    perception_node does: compatible with the reliable publisher)."""

    def __init__(self, node, with_clock=False):
        from rclpy.qos import QoSProfile, QoSReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from std_msgs.msg import String

        self.node = node
        self.images, self.infos, self.truth, self.clock = [], [], [], []
        self.subs = [
            node.create_subscription(Image, "camera/image_raw", self.images.append, qos_profile_sensor_data),
            node.create_subscription(CameraInfo, "camera/camera_info", self.infos.append, qos_profile_sensor_data),
            node.create_subscription(String, "camera/ground_truth",
                                     lambda m: self.truth.append(json.loads(m.data)),
                                     QoSProfile(depth=100, reliability=QoSReliabilityPolicy.RELIABLE)),
        ]
        if with_clock:
            from rosgraph_msgs.msg import Clock

            self.subs.append(node.create_subscription(
                Clock, "/clock", lambda m: self.clock.append(m.clock), QoSProfile(depth=100)))

    def spin_until(self, proc, n_frames, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            rclpy.spin_once(self.node, timeout_sec=0.05)
            if self.truth and self.truth[-1]["frame"] >= n_frames - 1 and len(self.images) and \
                    self.images[-1].header.stamp == _stamp_msg(self.truth[-1]["stamp"]):
                break
            if proc.poll() is not None:
                break
        for _ in range(10):  # drain what is in flight
            rclpy.spin_once(self.node, timeout_sec=0.02)

    def close(self):
        for s in self.subs:
            self.node.destroy_subscription(s)


def _stamp_msg(d):
    from builtin_interfaces.msg import Time

    return Time(sec=d["sec"], nanosec=d["nanosec"])


def _ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def _check_stream(lis: _Listener):
    """What both time sources share: content, sizes, frame ids, stamp pairing."""
    from vljepa_ros.sim.captions import state_caption
    from vljepa_ros.sim.episodes import EpisodeScript

    assert len(lis.truth) >= FRAMES - 5, f"only {len(lis.truth)} ground-truth messages"
    frames = [g["frame"] for g in lis.truth]
    assert frames == list(range(frames[0], frames[0] + len(frames))), "frames skipped or reordered"
    assert frames[-1] == FRAMES - 1, "max_frames not honoured"
    assert len(lis.images) >= FRAMES - 5 and len(lis.infos) >= FRAMES - 5
    for img in lis.images:
        assert (img.encoding, img.width, img.height, img.step) == ("rgb8", SIZE, SIZE, 3 * SIZE)
        assert len(img.data) == SIZE * SIZE * 3
        assert img.header.frame_id == "sim_camera_optical_frame"
    stamps = [_ns(m.header.stamp) for m in lis.images]
    assert all(b > a for a, b in zip(stamps, stamps[1:])), "image stamps must increase"
    # Not a black frame.
    pix = np.frombuffer(bytes(lis.images[-1].data), np.uint8)
    assert pix.std() > 5
    for info in lis.infos:
        assert (info.width, info.height) == (SIZE, SIZE)
        assert info.header.frame_id == "sim_camera_optical_frame"
        assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
        fx, _, cx, _, fy, cy, _, _, one = info.k
        assert fx > 0 and fx == fy and one == 1.0
        assert cx == pytest.approx((SIZE - 1) / 2) and cy == pytest.approx((SIZE - 1) / 2)
        # MuJoCo's default fovy is 45 degrees.
        assert fy == pytest.approx((SIZE / 2) / math.tan(math.radians(45) / 2))
        assert list(info.p) == [fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert {_ns(m.header.stamp) for m in lis.infos} == set(stamps)
    # Ground truth: same stamps as the images, canonical captions of the script.
    by_stamp = {(g["stamp"]["sec"], g["stamp"]["nanosec"]): g for g in lis.truth}
    for img in lis.images:
        assert (img.header.stamp.sec, img.header.stamp.nanosec) in by_stamp
    script = EpisodeScript.generate(0, "test")
    truths = script.truths()
    for g in lis.truth:
        assert (g["seed"], g["split"]) == (0, "test")
        assert g["t"] == pytest.approx(g["frame"] / FPS)
        want = truths[g["frame"]]
        assert g["state"] == json.loads(json.dumps(want.state()))
        assert g["caption"] == state_caption(want.state())
        assert g["arm_moving"] == want.arm_moving and g["transition_id"] == want.transition_id
    from vljepa_ros.sim.captions import action_text

    starts = {e.frame_start: e for e in script.events}
    seen = [g for g in lis.truth if g["frame"] in starts]
    assert seen, "the test window should contain an event start (seed 0 / test: lamp_off at frame 26)"
    for g in lis.truth:
        e = starts.get(g["frame"])
        assert (g["event"] or {}).get("action") == (action_text(e.action()) if e else None)
    return script


def test_live_camera_stream_and_run_time_parameters(node):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    lis = _Listener(node)
    proc = _start_node(f"image_size:={SIZE}", f"max_frames:={FRAMES}", f"fps:={FPS}", "start_delay_s:=2.5")
    try:
        lis.spin_until(proc, FRAMES, timeout=40)
        assert proc.poll() is None, f"node exited: {_stop(proc)}"
        _check_stream(lis)
        # time_source ros: live stamps (wall clock here), about 1/fps apart.
        stamps = [_ns(m.header.stamp) * 1e-9 for m in lis.images]
        assert abs(stamps[-1] - time.time()) < 30
        assert np.median(np.diff(stamps)) == pytest.approx(1 / FPS, rel=0.5)

        client = node.create_client(SetParameters, "/sim_camera/set_parameters")
        assert client.wait_for_service(timeout_sec=10)

        def set_param(name, value):
            v = ParameterValue()
            if isinstance(value, float):
                v.type, v.double_value = ParameterType.PARAMETER_DOUBLE, value
            else:
                v.type, v.string_value = ParameterType.PARAMETER_STRING, value
            fut = client.call_async(SetParameters.Request(parameters=[Parameter(name=name, value=v)]))
            rclpy.spin_until_future_complete(node, fut, timeout_sec=10)
            assert fut.done()
            return fut.result().results[0]

        r = set_param("fps", 0.0)
        assert not r.successful and "fps" in r.reason and "(0, 60]" in r.reason
        r = set_param("fps", -1.0)
        assert not r.successful and r.reason
        r = set_param("split", "bogus")
        assert not r.successful and "read-only" in r.reason
        r = set_param("fps", 30.0)
        assert r.successful, r.reason
        node.destroy_client(client)
    finally:
        lis.close()
        out = _stop(proc)
    assert proc.returncode == 0, out
    assert "finished: 30 frames published" in out and "frames/s achieved" in out


def test_sim_time_publishes_clock_and_stamps_episode_time(node):
    from vljepa_ros.sim.camera import SIM_EPOCH_NS

    lis = _Listener(node, with_clock=True)
    proc = _start_node(f"image_size:={SIZE}", f"max_frames:={FRAMES}", f"fps:={FPS}",
                       "start_delay_s:=2.5", "time_source:=sim")
    try:
        lis.spin_until(proc, FRAMES, timeout=40)
    finally:
        lis.close()
        out = _stop(proc)
    assert proc.returncode == 0, out
    _check_stream(lis)
    for g in lis.truth:
        want = SIM_EPOCH_NS + round(g["frame"] / FPS * 1e9)
        assert g["stamp"]["sec"] * 1_000_000_000 + g["stamp"]["nanosec"] == want
    clock = {_ns(c) for c in lis.clock}
    assert len(clock) >= FRAMES - 5
    assert {_ns(m.header.stamp) for m in lis.images} <= clock, "every image stamp was on /clock first"


@pytest.mark.parametrize("param,expected", [
    ("fps:=-1.0", "fps=-1.0 is outside [0.0, 60.0]"),
    ("fps:=0.0", "fps=0.0 must be in (0, 60] frames/s"),
    ("split:=bogus", "split='bogus' must be one of: train, val, test"),
    ("time_source:=wall", "time_source='wall' must be one of: ros, sim"),
    ("image_size:=8", "image_size=8 is outside [32, 1024]"),
    ("image_size:=abc", "image_size='abc' must be an integer"),
    ("frame_id:=' '", "frame_id must not be empty"),
])
def test_invalid_start_up_parameters_exit_with_a_reason(param, expected):
    proc = _start_node(param)
    try:
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 2, out
    assert "invalid parameters" in out and expected in out, out


def test_camera_model_matches_the_rendered_image():
    """K and the optical-frame pose put a known object where MuJoCo draws it."""
    from vljepa_ros.sim.camera import camera_pose, pinhole_intrinsics
    from vljepa_ros.sim.world import OBJ_HALF, SceneParams, TabletopWorld, cell_xy

    params = SceneParams(cam_azimuth=100.0, cam_elevation=-42.0, cam_distance=1.2)
    world = TabletopWorld(shadow_size=256)
    try:
        world.set_params(params)
        size = 96
        pos, q = camera_pose(params.cam_azimuth, params.cam_elevation, params.cam_distance, params.cam_lookat)
        fx, fy, cx, cy = pinhole_intrinsics(float(world.model.vis.global_.fovy), size, size)
        x, y, z, w = q
        rot = np.array([  # optical -> world
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ])
        for cell in [(0, 0), (2, 1)]:
            world.set_objects([])
            world.place("red", "cube", cell)
            rgb = world.render(size, size).astype(int)
            p = rot.T @ (np.array([*cell_xy(cell), OBJ_HALF]) - pos)
            u, v = fx * p[0] / p[2] + cx, fy * p[1] / p[2] + cy
            r, g, b = rgb[int(round(v)), int(round(u))]
            assert r > 1.5 * g and r > 1.5 * b, (cell, u, v, (r, g, b))
    finally:
        world.close()
