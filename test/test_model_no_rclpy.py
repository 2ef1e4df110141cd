"""The ROS-free core: it imports where rclpy cannot be imported, and no core
module imports rclpy anywhere, function bodies included (static check)."""
import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vljepa_ros"
ROS_LAYER = PACKAGE / "ros"

SCRIPT = textwrap.dedent(
    """
    import sys
    class _NoROS:
        def find_spec(self, name, path=None, target=None):
            if name == "rclpy" or name.startswith("rclpy.") or name.startswith("vljepa_ros.ros"):
                raise ImportError(f"blocked by test: {name}")
            return None
    sys.meta_path.insert(0, _NoROS())
    try:
        import rclpy
    except ImportError:
        pass
    else:
        raise SystemExit("blocker failed: rclpy imported")
    import vljepa_ros.models, vljepa_ros.world_model, vljepa_ros.checkpoint
    from vljepa_ros.models.vljepa import VLJEPA
    assert not any(m == "rclpy" or m.startswith("rclpy.") for m in sys.modules)
    print("CORE_OK")
    """
)


def test_core_imports_without_rclpy():
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "CORE_OK" in r.stdout


def test_blocker_really_blocks():
    # guard against a vacuous pass: the same blocker makes importing rclpy fail
    code = SCRIPT.split("try:")[0] + "import rclpy\n"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "blocked by test: rclpy" in r.stderr


def rclpy_imports(source: str, filename: str = "<source>") -> list[str]:
    """Every rclpy import in a module's source, wherever it is (module level,
    functions, methods, branches): ``import rclpy[.x]``, ``from rclpy[.x] import
    ...`` and ``importlib.import_module("rclpy[.x]")`` / ``__import__("rclpy...")``
    with a literal name. Returns ``"file:line: module"`` per import."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module] if node.level == 0 and node.module else []
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            first = node.args[0]
            if called in ("import_module", "__import__") and isinstance(first, ast.Constant) \
                    and isinstance(first.value, str):
                names = [first.value]
        found += [f"{filename}:{node.lineno}: {n}" for n in names if n == "rclpy" or n.startswith("rclpy.")]
    return found


def core_sources() -> list[Path]:
    """Every .py module of the package outside the ROS layer (vljepa_ros/ros/)."""
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if ROS_LAYER not in p.parents and "__pycache__" not in p.parts)


def test_no_core_module_imports_rclpy():
    sources = core_sources()
    names = {p.relative_to(REPO).as_posix() for p in sources}
    # not vacuous: the walk sees the core, its subpackages and nothing of the ROS layer
    assert {"vljepa_ros/__init__.py", "vljepa_ros/apps/bench.py", "vljepa_ros/benchmark/policies.py",
            "vljepa_ros/models/vljepa.py",
            "vljepa_ros/sim/world.py", "vljepa_ros/data/bag.py"} <= names
    assert not any(n.startswith("vljepa_ros/ros/") for n in names)
    found = [hit for p in sources
             for hit in rclpy_imports(p.read_text(encoding="utf-8"), p.relative_to(REPO).as_posix())]
    assert found == [], "core modules import rclpy (only vljepa_ros/ros/ may):\n" + "\n".join(found)


@pytest.mark.parametrize("body", [
    "    import rclpy\n",
    "    import os, rclpy.executors as ex\n",
    "    from rclpy.node import Node\n",
    "    import importlib\n    importlib.import_module('rclpy.qos')\n",
    "    return __import__('rclpy')\n",
])
def test_checker_fails_on_rclpy_imported_inside_a_function(body):
    source = "import json\n\n\ndef run(args):\n    if args:\n        pass\n" + body
    found = rclpy_imports(source, "synthetic.py")
    assert len(found) == 1 and found[0].startswith("synthetic.py:"), found


def test_checker_passes_clean_sources_and_sees_the_ros_layer():
    assert rclpy_imports("import json\nfrom .ros import bench_runtime\nimport rclpy_like\n") == []
    # the runtime benchmark imports rclpy only inside functions: the walk still sees it
    bench_runtime = ROS_LAYER / "bench_runtime.py"
    assert rclpy_imports(bench_runtime.read_text(encoding="utf-8"))
