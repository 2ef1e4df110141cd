"""The model core imports where rclpy cannot be imported (ROS-free core)."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

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
