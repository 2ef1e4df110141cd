"""Launch arguments and command-line parameters reach the nodes and win over
config/perception.yaml (issue 11), checked against rclpy's own parameter
resolution (real rcl), without the ROS launch tools: what the launch files
compute lives in vljepa_ros.ros.launch_support."""
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from conftest import REPO_ROOT, ros_messages_available

pytestmark = pytest.mark.skipif(not ros_messages_available(), reason="messages not built (make build)")

SHIPPED = REPO_ROOT / "config" / "perception.yaml"

# The layout config/perception.yaml had before issue 11: node-specific
# sections, which rcl applies after /** (a user's own file may still look so).
OLD_LAYOUT = """
/**:
  ros__parameters:
    threshold: 0.05
/**/perception_node:
  ros__parameters:
    model_path: ""
    image_transport: "raw"
    state_bank: [""]
/**/decoder_node:
  ros__parameters:
    model_path: ""
    decode_mode: "generative"
"""


@pytest.fixture(scope="module")
def ros():
    import rclpy

    rclpy.init()
    yield rclpy
    rclpy.shutdown()


def _declared(ros, cli_args, name="perception_node", namespace="", table=None):
    """The values a node declaring ``table`` (perception_node's by default) gets
    from ``cli_args``: the real declaration code, without loading a model."""
    from rclpy.node import Node

    from vljepa_ros.ros.common import declare_params
    from vljepa_ros.ros.perception_node import PARAMS

    node = Node(name, namespace=namespace, cli_args=["--ros-args", *cli_args])
    try:
        return declare_params(node, table or PARAMS)
    finally:
        node.destroy_node()


def test_shipped_yaml_is_one_wildcard_section_with_the_nodes_defaults():
    from vljepa_ros.ros.decoder_node import PARAMS as DECODER
    from vljepa_ros.ros.perception_node import PARAMS as PERCEPTION

    data = yaml.safe_load(SHIPPED.read_text())
    assert list(data) == ["/**"], "a node-specific section would beat launch and -p overrides"
    values = data["/**"]["ros__parameters"]
    tables = {**PERCEPTION, **DECODER}
    assert set(values) <= set(tables), set(values) - set(tables)
    for name, value in values.items():  # the file documents the defaults; it must not redefine them
        assert value == tables[name].default, name


@pytest.mark.parametrize("namespace", ["", "/ns", "/a/ns"])
def test_file_parameters_follow_rcl_matching_and_order(ros, tmp_path, namespace):
    from vljepa_ros.ros.launch_support import file_parameters, node_fqn

    keys = ["perception_node", "/perception_node", "/**/perception_node", "/*/perception_node", "/**",
            "/ns/perception_node", "ns/perception_node", "/*", "/ns/*", "/ns/**", "/**/ns/perception_node",
            "/other_node"]
    for i, key in enumerate(keys):  # each key alone
        f = tmp_path / f"k{i}.yaml"
        f.write_text(yaml.safe_dump({key: {"ros__parameters": {"threads": 7}}}))
        want = _declared(ros, ["--params-file", str(f)], namespace=namespace)["threads"]
        got = file_parameters([f], node_fqn(namespace, "perception_node")).get("threads", 1)
        assert got == want, (key, namespace)
    # order: sections in order of first appearance, across files
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("/**:\n  ros__parameters:\n    threads: 2\n/**/perception_node:\n  ros__parameters:\n"
                 "    threads: 3\n")
    b.write_text("/**:\n  ros__parameters:\n    threads: 4\n    window_frames: 5\n")
    for files in ([a], [b, a], [a, b], [b, a, b]):
        want = _declared(ros, [x for f in files for x in ("--params-file", str(f))], namespace=namespace)
        got = file_parameters(files, node_fqn(namespace, "perception_node"))
        assert (got.get("threads"), got.get("window_frames", 0)) == (want["threads"], want["window_frames"])


@pytest.mark.parametrize("namespace", ["", "/robot1"])
@pytest.mark.parametrize("layout", ["shipped", "old"])
def test_launch_arguments_win_over_every_params_file_layout(ros, tmp_path, namespace, layout):
    from vljepa_ros.ros.launch_support import node_params_file, pipeline_overrides

    params_file = SHIPPED if layout == "shipped" else tmp_path / "old.yaml"
    if layout == "old":
        params_file.write_text(OLD_LAYOUT)
    perception, decoder = pipeline_overrides("/nonexistent/model", "compressed", "false")
    path = node_params_file(params_file, namespace, "perception_node", perception)
    try:
        values = _declared(ros, ["--params-file", path], namespace=namespace)
    finally:
        os.unlink(path)
    assert values["model_path"] == "/nonexistent/model" and values["image_transport"] == "compressed"
    assert values["threshold"] == 0.05  # the file's other values stay
    # not given: the file's value stays
    perception, _ = pipeline_overrides("", "", "true")
    assert perception == {"use_sim_time": True}
    perception, decoder = pipeline_overrides("", "", "false", "false")  # autostart:=false reaches both nodes
    assert perception["autostart"] is False and decoder["autostart"] is False


def test_command_line_parameters_win_over_the_shipped_params_file(ros):
    values = _declared(ros, ["--params-file", str(SHIPPED), "-p", "image_transport:=compressed",
                             "-p", "threshold:=0.2", "-p", "model_path:=/elsewhere"])
    assert (values["image_transport"], values["threshold"], values["model_path"]) == \
        ("compressed", 0.2, "/elsewhere")


def test_launch_model_path_reaches_the_node_and_start_up_names_it(ros, tmp_path):
    from rclpy.parameter import Parameter

    from vljepa_ros.ros.launch_support import node_params_file, pipeline_overrides
    from vljepa_ros.ros.perception_node import PerceptionNode

    missing = tmp_path / "nonexistent"
    perception, _ = pipeline_overrides(str(missing), "", "false")
    path = node_params_file(SHIPPED, "", "perception_node", perception)
    try:
        with pytest.raises(RuntimeError, match=str(missing)):
            PerceptionNode(cli_args=["--ros-args", "--params-file", path])
    finally:
        os.unlink(path)
    with pytest.raises(RuntimeError, match="model_path"):  # a file, not a directory: named too
        PerceptionNode(parameter_overrides=[Parameter("model_path", value=str(SHIPPED))])


def test_bad_launch_arguments_and_params_files_are_named():
    from vljepa_ros.ros.launch_support import LaunchArgumentError, pipeline_overrides, read_params_file, typed_argument

    assert typed_argument("image_size", " 96 ", int) == 96 and typed_argument("fps", "15", float) == 15.0
    with pytest.raises(LaunchArgumentError, match=r"image_size:='abc' must be an integer"):
        typed_argument("image_size", "abc", int)
    with pytest.raises(LaunchArgumentError, match="fps"):
        typed_argument("fps", "fast", float)
    with pytest.raises(LaunchArgumentError, match="image_transport:='theora' must be one of: raw, compressed"):
        pipeline_overrides("", "theora", "false")
    with pytest.raises(LaunchArgumentError, match="use_sim_time"):
        pipeline_overrides("", "", "yes please")
    with pytest.raises(LaunchArgumentError, match="autostart:='later' must be true or false"):
        pipeline_overrides("", "", "false", "later")
    with pytest.raises(LaunchArgumentError, match="/no/such.yaml"):
        read_params_file("/no/such.yaml")


def test_bad_params_file_content_is_named(tmp_path):
    from vljepa_ros.ros.launch_support import LaunchArgumentError, read_params_file

    bad = tmp_path / "bad.yaml"
    bad.write_text("perception_node:\n  threshold: 0.1\n")  # ros__parameters missing
    with pytest.raises(LaunchArgumentError, match=r"bad\.yaml.*ros__parameters"):
        read_params_file(bad)
    bad.write_text("/**: [unclosed\n")
    with pytest.raises(LaunchArgumentError, match=r"bad\.yaml.*not valid YAML"):
        read_params_file(bad)


def test_a_node_exiting_stops_the_launch_non_zero_only_on_failure():
    from vljepa_ros.ros.launch_support import NodeExitedError, exit_outcome

    with pytest.raises(NodeExitedError, match="perception_node-1 exited with code 2"):
        exit_outcome("perception_node-1", 2, shutting_down=False)
    assert exit_outcome("decoder_node-2", 0, shutting_down=False) == "decoder_node-2 exited"
    assert exit_outcome("decoder_node-2", -2, shutting_down=True) is None  # Ctrl-C: launch is stopping anyway


def test_bringup_command_line_parameters_win_over_the_params_file():
    # `bringup --ros-args -p threshold:=-1.0` was ignored: the file's value won
    out = subprocess.run([sys.executable, "-m", "vljepa_ros.ros.bringup", "--ros-args", "-p", "threshold:=-1.0"],
                         capture_output=True, text=True, timeout=120, cwd=REPO_ROOT)
    assert out.returncode == 2, out.stdout + out.stderr
    assert "threshold=-1.0 is outside [0.001, 1.99]" in out.stderr


def test_pytest_survives_an_old_launch_testing_plugin(tmp_path):
    """A launch_testing before 3.4.12 registers a hook pytest 9 rejects."""
    site = tmp_path / "site"
    (site / "fake_launch_testing-1.0.dist-info").mkdir(parents=True)
    (site / "old_launch_testing_hooks.py").write_text(
        "def pytest_pycollect_makemodule(path, parent):\n    return None\n")
    (site / "fake_launch_testing-1.0.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: fake-launch-testing\nVersion: 1.0\n")
    (site / "fake_launch_testing-1.0.dist-info" / "entry_points.txt").write_text(
        "[pytest11]\nlaunch_testing = old_launch_testing_hooks\nlaunch_ros = old_launch_testing_hooks\n")
    (tmp_path / "test_probe.py").write_text(textwrap.dedent("def test_probe():\n    pass\n"))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]))
    run = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
           str(tmp_path / "test_probe.py")]
    crashed = subprocess.run(run + ["-c", os.devnull], capture_output=True, text=True, env=env, timeout=60)
    assert "PluginValidationError" in crashed.stdout + crashed.stderr  # the probe reproduces the crash
    ours = subprocess.run(run + ["-c", str(REPO_ROOT / "pytest.ini")], capture_output=True, text=True, env=env,
                          timeout=60)
    assert ours.returncode == 0 and "1 passed" in ours.stdout, ours.stdout + ours.stderr


def test_sim_camera_starts_its_episode_only_once_someone_subscribes(ros):
    """sim_demo.launch.py: perception_node subscribes after loading its model
    (6-8 s); the camera's first frames were lost. With wait_for_subscribers the
    first frame a subscriber gets is the episode's frame 0."""
    import json
    import time

    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.qos import QoSProfile, QoSReliabilityPolicy
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from vljepa_ros.ros.sim_camera_node import SimCameraNode

    camera = SimCameraNode(cli_args=["--ros-args", "-r", "__ns:=/vw"], parameter_overrides=[
        Parameter(k, value=v) for k, v in {"image_size": 32, "fps": 15.0, "start_delay_s": 0.0, "max_frames": 5,
                                           "time_source": "sim", "publish_tf": False,
                                           "wait_for_subscribers": 1}.items()])
    listener = ros.create_node("vw_listener", namespace="vw")
    executor = SingleThreadedExecutor()
    executor.add_node(camera)
    executor.add_node(listener)
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert camera.frames_published == 0, "published before anyone listened"
        truth, images = [], []
        listener.create_subscription(String, "camera/ground_truth", lambda m: truth.append(json.loads(m.data)),
                                     QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE))
        listener.create_subscription(Image, "camera/image_raw", images.append,
                                     QoSProfile(depth=50, reliability=QoSReliabilityPolicy.RELIABLE))
        deadline = time.monotonic() + 30.0
        while len(images) < 5 and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert len(images) == 5 and [t["frame"] for t in truth[:5]] == [0, 1, 2, 3, 4]
    finally:
        executor.shutdown(timeout_sec=1.0)
        camera.destroy_node()
        listener.destroy_node()
