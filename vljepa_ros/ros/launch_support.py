"""What the launch files compute, as plain functions (tested without the ROS
launch tools, which are not installable from the PyPI wheels).

Parameters: a launch argument must always win over the parameter file. launch_ros
writes a launch file's dict parameters under ``/**``, and rcl applies every
section matching a node in the order the section names first appear, so a
file's ``/**/perception_node:`` section beat them (issue 11). The launch files
therefore resolve the file here, with rcl's own matching rule, and hand each
node one dict: the file's values for that node, then the launch arguments.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import yaml

from ..config_files import ConfigError, read_yaml

# decoder_node's inputs, remapped to perception_node's private topics: one table
# for the launch file, bringup and the runtime benchmark
DECODER_REMAPS = {
    "embedding": "perception_node/embedding",
    "action": "perception_node/action",
    "state_reading": "perception_node/state_reading",
}


class LaunchArgumentError(ValueError):
    """A launch argument or parameter file is unusable; the message names it."""


_BOOLS = {"true": True, "false": False}


def typed_argument(name: str, text: str, kind: type, choices: tuple[str, ...] = ()):
    """A launch argument's text as ``kind`` (str, int, float, bool); the error
    names the argument (a launch_ros type error names none)."""
    text = str(text).strip()
    try:
        if kind is bool:
            value = _BOOLS[text.lower()]
        elif kind is int:
            value = int(text)
        elif kind is float:
            value = float(text)
        else:
            value = text
    except (KeyError, ValueError):
        want = {bool: "true or false", int: "an integer", float: "a number"}[kind]
        raise LaunchArgumentError(f"launch argument {name}:={text!r} must be {want}") from None
    if choices and value not in choices:
        raise LaunchArgumentError(f"launch argument {name}:={text!r} must be one of: {', '.join(choices)}")
    return value


def node_fqn(namespace: str, name: str) -> str:
    ns = "/".join(t for t in str(namespace or "").split("/") if t)
    return f"/{ns}/{name}" if ns else f"/{name}"


def _key_regex(key: str) -> re.Pattern:
    """rcl's node-name patterns: ``/**`` any number of tokens, ``*`` one token;
    a name without a leading '/' is absolute (checked against rclpy in the tests)."""
    key = key if key.startswith("/") else "/" + key
    parts = []
    for token in key.split("/")[1:]:
        parts.append("(/[^/]+)*" if token == "**" else "/[^/]+" if token == "*" else "/" + re.escape(token))
    return re.compile("".join(parts))


def _flatten(params: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in params.items():
        if isinstance(v, dict):  # nested YAML = dotted parameter names
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_params_file(path) -> dict[str, dict]:
    """{node-name pattern: {parameter: value}} of a ROS 2 parameter file."""
    path = Path(str(path)).expanduser()
    try:
        data = read_yaml(path)
    except ConfigError as e:
        raise LaunchArgumentError(f"params_file {e}") from None
    sections = {}
    for key, body in data.items():
        if not isinstance(body, dict) or not isinstance(body.get("ros__parameters"), dict):
            raise LaunchArgumentError(f"params_file {str(path)!r}: section {key!r} has no 'ros__parameters:' "
                                      "mapping (not a ROS 2 parameter file?)")
        sections[str(key)] = _flatten(body["ros__parameters"])
    return sections


def file_parameters(files, fqn: str) -> dict:
    """The values a node named ``fqn`` gets from ``--params-file`` of each of
    ``files`` in turn, by rcl's rule: sections are kept in the order their name
    first appears (a later file's section of the same name updates it in
    place), and every section matching the node is applied in that order."""
    ordered: dict[str, dict] = {}
    for f in files:
        for key, params in read_params_file(f).items():
            ordered.setdefault(key, {}).update(params)
    values = {}
    for key, params in ordered.items():
        if _key_regex(key).fullmatch(fqn):
            values.update(params)
    return values


def node_parameters(params_file, namespace: str, name: str, overrides: dict) -> dict:
    """A node's parameters: the file's values for this node, then the launch
    arguments given (they always win)."""
    return {**file_parameters([params_file], node_fqn(namespace, name)), **overrides}


def node_params_file(params_file, namespace: str, name: str, overrides: dict) -> str:
    """node_parameters written to a file of its own (one ``/**`` section) for
    launch_ros ``parameters=[path]``. A file, not a dict: launch_ros reads
    every string of a dict parameter as YAML, so "" became an unset parameter
    and "1.0" a number."""
    values = node_parameters(params_file, namespace, name, overrides)
    with tempfile.NamedTemporaryFile("w", prefix=f"vljepa_{name}_", suffix=".yaml", delete=False) as f:
        yaml.safe_dump({"/**": {"ros__parameters": values}}, f)
    return f.name


def pipeline_overrides(model_path: str, image_transport: str, use_sim_time: str,
                       autostart: str = "") -> tuple[dict, dict]:
    """Launch arguments of perception.launch.py -> (perception_node, decoder_node)
    overrides. Empty text = not given: the parameter file's value stays."""
    common = {"use_sim_time": typed_argument("use_sim_time", use_sim_time, bool)}
    if str(autostart).strip():
        common["autostart"] = typed_argument("autostart", autostart, bool)
    if str(model_path).strip():
        common["model_path"] = typed_argument("model_path", model_path, str)
    perception = dict(common)
    if str(image_transport).strip():
        perception["image_transport"] = typed_argument("image_transport", image_transport, str,
                                                       ("raw", "compressed"))
    return perception, common


class NodeExitedError(RuntimeError):
    """A node of the launch exited with an error: raised from its on_exit
    handler so that launch stops everything and returns non-zero (a Shutdown
    action alone ends ros2 launch with 0)."""


def exit_outcome(name: str, returncode: int | None, shutting_down: bool) -> str | None:
    """The Shutdown reason when a node exits on its own; None while launch is
    already shutting down (Ctrl-C). Raises NodeExitedError for a failure."""
    if shutting_down:
        return None
    if returncode:
        raise NodeExitedError(f"{name} exited with code {returncode} (its FATAL line above says why); "
                              "stopping the launch")
    return f"{name} exited"
