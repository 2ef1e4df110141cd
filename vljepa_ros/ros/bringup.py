"""In-process bringup: the perception graph in one process, for machines
without the ROS launch tools (and for `make demo` and the tests).

It starts the same nodes with the same parameter file and remappings as
launch/perception.launch.py, in one process on one executor thread
(perception_node infers on its own worker thread):

    sim_camera (optional) -> perception_node -> decoder_node -> semantic_events
                                            +-> memory_node (~/query, ~/latest, ~/stats; --no-memory: off)

    python -m vljepa_ros.ros.bringup --params-file config/perception.yaml \
        --image-topic /camera/image_raw [--namespace robot1] [--use-sim-time]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from rclpy.parameter import Parameter

from .launch_support import DECODER_REMAPS

DEFAULT_PARAMS = Path(__file__).resolve().parents[2] / "config" / "perception.yaml"


def default_params_file() -> Path:
    """config/perception.yaml of the checkout, or of the colcon install."""
    if DEFAULT_PARAMS.exists():
        return DEFAULT_PARAMS
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("vljepa_ros")) / "config" / "perception.yaml"
    except (ImportError, LookupError):
        return DEFAULT_PARAMS


@dataclass
class Graph:
    perception: object
    decoder: object
    camera: object | None = None
    extra: list = field(default_factory=list)
    memory: object | None = None

    @property
    def nodes(self) -> list:
        return [n for n in (self.camera, self.perception, self.decoder, self.memory, *self.extra) if n is not None]


def _ros_args(params_file: Path | None, namespace: str, remaps: dict[str, str], extra=()) -> list[str]:
    """A node's own arguments; ``extra`` (the user's --ros-args) comes after the
    parameter file, so that its -p values win over the file's (rcl: the later
    value of a name in the same section wins)."""
    args = ["--ros-args"]
    if params_file is not None:
        args += ["--params-file", str(params_file)]
    if namespace:
        args += ["-r", f"__ns:=/{namespace.strip('/')}"]
    for src, dst in remaps.items():
        args += ["-r", f"{src}:={dst}"]
    return args + [a for a in extra if a not in ("--ros-args", "--")]


def build_graph(params_file: Path | None = None, *, namespace: str = "", image_topic: str = "/camera/image_raw",
                model_path: str = "", use_sim_time: bool = False, sim_camera: dict | None = None,
                perception_overrides: dict | None = None, decoder_overrides: dict | None = None,
                ros_args=(), memory_overrides: dict | None = None) -> Graph:
    """Create the nodes (rclpy must be initialised). ``sim_camera``: parameters
    for a SimCameraNode, or None for an external camera. The camera is created
    last, after the models are loaded, so its first frame finds them ready.
    ``ros_args``: the user's ``--ros-args ...`` (e.g. ``-p threshold:=0.1``),
    given to every node after the parameter file. ``memory_overrides``:
    parameters for a memory_node (e.g. ``{"memory_dir": ...}``), None = none."""
    from .decoder_node import DecoderNode
    from .perception_node import PerceptionNode

    params_file = params_file or default_params_file()

    def overrides(extra: dict | None) -> list[Parameter]:
        values = {"use_sim_time": use_sim_time, **({"model_path": model_path} if model_path else {}), **(extra or {})}
        return [Parameter(k, value=v) for k, v in values.items()]

    image_remap = {"image": image_topic, "image/compressed": image_topic.rstrip("/") + "/compressed"}
    perception = PerceptionNode(cli_args=_ros_args(params_file, namespace, image_remap, ros_args),
                                parameter_overrides=overrides(perception_overrides))
    decoder = DecoderNode(cli_args=_ros_args(params_file, namespace, DECODER_REMAPS, ros_args),
                          parameter_overrides=overrides(decoder_overrides))
    memory = None
    if memory_overrides is not None:
        from .memory_node import MemoryNode

        memory = MemoryNode(cli_args=_ros_args(params_file, namespace, {"embedding": DECODER_REMAPS["embedding"]},
                                               ros_args),
                            parameter_overrides=overrides(memory_overrides))
    camera = None
    if sim_camera is not None:
        from .sim_camera_node import SimCameraNode

        camera = SimCameraNode(cli_args=_ros_args(None, namespace, {}, ros_args),
                               parameter_overrides=[Parameter(k, value=v) for k, v in sim_camera.items()])
    return Graph(perception=perception, decoder=decoder, camera=camera, memory=memory)


def spin_graph(graph: Graph, until=None, timeout_s: float | None = None, threads: int = 1) -> bool:
    """Spin all nodes until ``until()`` is true, the timeout passes, or Ctrl-C.
    Returns True if ``until`` was reached."""
    # One thread by default: extra executor threads poll in Python and take the
    # GIL from perception's frame worker (docs/design.md).
    executor = MultiThreadedExecutor(num_threads=threads) if threads > 1 else SingleThreadedExecutor()
    for node in graph.nodes:
        executor.add_node(node)
    reached = False
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
            if until is not None and until():
                reached = True
                break
            if deadline is not None and time.monotonic() > deadline:
                break
    finally:
        executor.shutdown(timeout_sec=1.0)
    return reached


def destroy_graph(graph: Graph) -> None:
    for node in graph.nodes:
        node.destroy_node()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="vljepa-bringup", description="Run perception + decoder in one process.")
    parser.add_argument("--params-file", type=Path, default=None,
                        help="ROS 2 parameter YAML (default: config/perception.yaml)")
    parser.add_argument("--image-topic", default="/camera/image_raw")
    parser.add_argument("--namespace", default="")
    parser.add_argument("--model-path", default="")
    parser.add_argument("--use-sim-time", action="store_true")
    parser.add_argument("--sim-camera", action="store_true", help="also run the simulated camera")
    parser.add_argument("--no-memory", action="store_true", help="do not run memory_node (as launch memory:=false)")
    args, ros_args = parser.parse_known_args(argv)
    rclpy.init(args=ros_args)
    graph = None
    try:
        sim = {"time_source": "sim"} if args.sim_camera else None
        graph = build_graph(args.params_file, namespace=args.namespace, image_topic=args.image_topic,
                            model_path=args.model_path, use_sim_time=args.use_sim_time, sim_camera=sim,
                            ros_args=ros_args, memory_overrides=None if args.no_memory else {})
        spin_graph(graph)
    except KeyboardInterrupt:
        pass
    except (ValueError, RuntimeError) as e:
        print(f"vljepa-bringup: {e}", file=sys.stderr)
        return 2
    finally:
        if graph is not None:
            destroy_graph(graph)
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
