"""`pip install .` gives a ROS-free core: importable and with working console
scripts in an environment where rclpy cannot be imported."""
import ast
import os
import pathlib
import pkgutil
import shutil
import site
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Executed by the new venv's site module at start-up: any import of a ROS
# Python package fails, as on a machine without ROS.
BLOCK_ROS = textwrap.dedent("""\
    import sys
    class _NoROS:
        blocked = ("rclpy", "rosidl_runtime_py", "rosidl_parser", "sensor_msgs", "std_msgs", "geometry_msgs",
                   "builtin_interfaces", "vljepa_ros.msg", "vljepa_ros.srv")
        def find_spec(self, name, path=None, target=None):
            if name in self.blocked or name.startswith(tuple(b + "." for b in self.blocked)):
                raise ImportError("blocked by test: no ROS here (" + name + ")")
            return None
    sys.meta_path.insert(0, _NoROS())
    """)


def core_modules():
    """Every module of the package except the rclpy nodes."""
    import vljepa_ros

    names = ["vljepa_ros"]
    for info in pkgutil.walk_packages([str(REPO / "vljepa_ros")], prefix="vljepa_ros."):
        if not (info.name == "vljepa_ros.ros" or info.name.startswith("vljepa_ros.ros.")):
            names.append(info.name)
    assert vljepa_ros.__file__
    return names


@pytest.fixture(scope="module")
def rosless_venv(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rosless")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    venv_site = pathlib.Path(subprocess.check_output(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    # torch, transformers, pip... come from the project venv's site-packages
    # (listed as a plain path, so its .pth files, ROS bootstrapper included, are
    # not run); ROS packages are blocked.
    (venv_site / "00_block_ros.pth").write_text("import _block_ros\n")
    (venv_site / "_block_ros.py").write_text(BLOCK_ROS)
    (venv_site / "zz_project_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # Build from a copy so setuptools' build/ does not land in colcon's build/.
    src = tmp / "src"
    src.mkdir()
    shutil.copy(REPO / "setup.py", src)
    shutil.copy(REPO / "README.md", src)
    shutil.copytree(REPO / "vljepa_ros", src / "vljepa_ros", ignore=shutil.ignore_patterns("__pycache__"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AMENT_PREFIX_PATH", "LD_LIBRARY_PATH")}
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--disable-pip-version-check", str(src)], check=True, env=env, cwd=tmp)
    return venv, env, tmp


def test_rclpy_is_really_blocked(rosless_venv):
    venv, env, tmp = rosless_venv
    result = subprocess.run([str(venv / "bin" / "python"), "-c", "import rclpy"],
                            env=env, cwd=tmp, capture_output=True, text=True)
    assert result.returncode != 0 and "blocked by test" in result.stderr


def test_core_imports_without_ros(rosless_venv):
    venv, env, tmp = rosless_venv
    modules = core_modules()
    code = "import importlib, sys\n" + "".join(f"importlib.import_module({m!r})\n" for m in modules) + \
        "import vljepa_ros; print(vljepa_ros.__file__)"
    result = subprocess.run([str(venv / "bin" / "python"), "-c", code], env=env, cwd=tmp,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    # Imported from the installed copy, not from the checkout.
    assert str(venv) in result.stdout


def declared_console_scripts() -> set[str]:
    """The script names setup.py's CONSOLE_SCRIPTS declares."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CONSOLE_SCRIPTS" for t in node.targets):
            return {entry.split("=")[0].strip() for entry in ast.literal_eval(node.value)}
    raise AssertionError("setup.py has no CONSOLE_SCRIPTS list")


def test_console_scripts_help(rosless_venv):
    venv, env, tmp = rosless_venv
    scripts = sorted((venv / "bin").glob("vljepa-*"))
    assert {s.name for s in scripts} == declared_console_scripts() and "vljepa-info" in declared_console_scripts()
    for script in scripts:
        result = subprocess.run([str(script), "--help"], env=env, cwd=tmp, capture_output=True, text=True)
        assert result.returncode == 0, f"{script.name} --help failed:\n{result.stderr}"
        assert "usage:" in result.stdout.lower(), script.name


def test_shipped_model_is_installed(rosless_venv):
    venv, _, _ = rosless_venv
    installed = list(venv.glob("lib/python*/site-packages/vljepa_ros/assets/tabletop"))
    assert len(installed) == 1, installed
    assert {p.name for p in installed[0].iterdir()} >= {"config.json", "model.safetensors"}
