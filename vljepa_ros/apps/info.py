"""`vljepa-info`: what this installation can do, without importing rclpy.

Prints the package version, the Python/torch versions, whether a ROS 2 Python
client (rclpy) and the generated vljepa_ros messages are importable (checked
with importlib.util.find_spec, which does not import them), and where the
shipped default model is.
"""
import argparse
import importlib.util
import platform
import sys
from importlib import resources

from vljepa_ros import __version__


def _available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="vljepa-info",
        description="Report the vljepa_ros version, its environment and the default model location.",
    )
    parser.parse_args(argv)
    print(f"vljepa_ros {__version__}")
    print(f"python     {platform.python_version()} ({sys.executable})")
    if _available("torch"):
        import torch

        print(f"torch      {torch.__version__} (threads: {torch.get_num_threads()})")
    else:
        print("torch      not installed")
    print(f"rclpy      {'importable' if _available('rclpy') else 'not found (ROS-free use only)'}")
    print(f"messages   {'built' if _available('vljepa_ros.msg') else 'not built (colcon build generates them)'}")
    assets = resources.files("vljepa_ros") / "assets"
    models = sorted(p.name for p in assets.iterdir() if p.is_dir()) if assets.is_dir() else []
    print(f"models     {', '.join(models) if models else 'none shipped in this checkout'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
