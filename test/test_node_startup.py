"""Start-up parameters of perception_node and decoder_node (issue 11, faults
2, 3 and 10): one FATAL line naming parameter, value and range, exit status 2,
no traceback; integers accepted for float parameters; [] as a phrase bank."""
import os
import subprocess
import sys

import pytest

from conftest import REPO_ROOT, ros_messages_available

pytestmark = pytest.mark.skipif(not ros_messages_available(), reason="messages not built (make build)")


@pytest.fixture(scope="module")
def ros():
    import rclpy

    rclpy.init()
    yield rclpy
    rclpy.shutdown()


@pytest.mark.parametrize("node, params, expected", [
    ("decoder_node", ["threshold:=-1"], ["threshold=-1.0 is outside [0.001, 1.99]"]),
    ("decoder_node", ["threshold:=abc", "stats_rate_hz:=0.0"],
     ["threshold='abc' must be a number in [0.001, 1.99]", "stats_rate_hz=0.0 is outside [0.01, 100.0]"]),
    ("decoder_node", ["decode_mode:=telepathy"], ["decode_mode='telepathy' must be one of: generative, retrieval"]),
    ("perception_node", ["threads:=0"], ["threads=0 is outside [1, 64]"]),
    ("perception_node", ["state_bank:=['a mug', '']"], ["state_bank: phrases must be non-empty strings"]),
    ("perception_node", ["state_query:=" + "x" * 1001], ["state_query has 1001 characters; at most 1000"]),
    # a bad combination is refused before any model is loaded (the default hysteresis is 0.025)
    ("perception_node", ["threshold:=0.02"], ["hysteresis must be in [0, threshold=0.02), got 0.025"]),
    ("decoder_node", ["threshold:=0.02", "autostart:=false"], ["hysteresis must be in [0, threshold=0.02)"]),
    ("perception_node", ["model_path:=~/no_such_model_dir"],  # '~' expanded: the error names the real path
     [os.path.join(os.path.expanduser("~"), "no_such_model_dir") + ": checkpoint directory does not exist"]),
    ("decoder_node", ["model_path:=~/no_such_model_dir"],
     [os.path.join(os.path.expanduser("~"), "no_such_model_dir") + ": checkpoint directory does not exist"]),
])
def test_start_up_parameter_errors_are_one_fatal_line(node, params, expected):
    cmd = [sys.executable, "-m", f"vljepa_ros.ros.{node}", "--ros-args"]
    for p in params:
        cmd += ["-p", p]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=REPO_ROOT,
                         env=dict(os.environ, RCUTILS_COLORIZED_OUTPUT="0"))
    text = out.stdout + out.stderr
    assert out.returncode == 2, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("[FATAL]") and f"[{node}]" in lines[0], text
    for part in expected:
        assert part in lines[0], text


def test_integers_for_floats_and_empty_banks_are_accepted(ros):
    from rclpy.parameter import Parameter

    from vljepa_ros.ros.decoder_node import DecoderNode

    # `-p text_bank:=[]` crashed decoder_node (TypeError); `threshold:=1` was refused
    node = DecoderNode(cli_args=["--ros-args", "-p", "text_bank:=[]", "-p", "decode_mode:=retrieval",
                                 "-p", "threshold:=1", "-p", "hysteresis:=0"])
    try:
        threshold = node.get_parameter("threshold")
        assert threshold.type_ == Parameter.Type.DOUBLE and threshold.value == 1.0
        assert node.stream.config.threshold == 1.0 and node.stream.config.hysteresis == 0.0
        assert node.stream.text.bank.texts == node.stream.checkpoint.phrase_banks["state"]  # the model's bank
        # at run time too: an integer for a float parameter is converted
        result = node.set_parameters([Parameter("max_settle_s", value=5)])[0]
        assert result.successful, result.reason
        assert node.get_parameter("max_settle_s").value == 5.0 and node.stream.config.max_settle_s == 5.0
        # parameters that only act at start-up are refused at run time instead of doing nothing
        for name, value in (("stats_rate_hz", 5.0), ("camera_pose_frame", "map")):
            result = node.set_parameters([Parameter(name, value=value)])[0]
            assert not result.successful, name
        result = node.set_parameters([Parameter("text_bank", value=["a mug", ""])])[0]
        assert not result.successful and "non-empty" in result.reason
    finally:
        node.destroy_node()


def test_perception_accepts_an_empty_state_bank_as_the_models(ros):
    from vljepa_ros.ros.perception_node import PerceptionNode

    node = PerceptionNode(cli_args=["--ros-args", "-p", "state_bank:=[]", "-p", "max_rate_hz:=30"])
    try:
        assert node.pipeline.world.state_bank == node.pipeline.checkpoint.phrase_banks["state"]
        assert node.max_rate_hz == 30.0
    finally:
        node.destroy_node()


def test_a_long_state_query_is_refused_at_run_time_too(ros):
    from rclpy.parameter import Parameter

    from vljepa_ros.ros.perception_node import PerceptionNode

    node = PerceptionNode(parameter_overrides=[Parameter("autostart", value=False)])  # no model needed
    try:
        result = node.set_parameters([Parameter("state_query", value="y" * 5000)])[0]
        assert not result.successful and "at most 1000" in result.reason
        assert node.set_parameters([Parameter("state_query", value="what is on the table?")])[0].successful
    finally:
        node.destroy_node()
