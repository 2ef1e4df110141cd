#!/usr/bin/env python3
"""Map the ROS 2 wheels' build-machine include paths onto this machine.

The `ros-jazzy-*` wheels ship CMake export files that name the include
directories of the machine that built them
(/opt/python/cp311-cp311/include/python3.11 and that machine's
site-packages/numpy/_core/include). CMake refuses imported targets whose
include directories do not exist, so `colcon build` of any package with
messages fails. This rewrites those two strings, inside the venv only, to this
interpreter's include directory and the venv's numpy include directory.
Idempotent: files already rewritten contain no build-machine path.

Usage: python tools/fix_ros_wheel_paths.py [PREFIX]   (default: sys.prefix)
"""
import os
import pathlib
import sys
import sysconfig

import numpy

BUILD_PYTHON_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
BUILD_NUMPY_INCLUDE = "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"


def main() -> int:
    prefix = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else sys.prefix)
    # sysconfig's "include" of a venv points at the base interpreter's headers.
    # realpath: CMake rejects exported include directories inside the source
    # tree, so the venv lives outside the checkout (.venv is a symlink to it)
    # and the real path must be written, not the path through the symlink.
    python_include = os.path.realpath(sysconfig.get_paths()["include"])
    numpy_include = os.path.realpath(numpy.get_include())
    for path in (python_include, numpy_include):
        if not pathlib.Path(path, "Python.h" if path == python_include else "numpy").exists():
            print(f"fix_ros_wheel_paths: {path} has no headers; install the Python "
                  "development headers (Debian: python3-dev)", file=sys.stderr)
            return 1
    rewritten = 0
    for cmake_file in (prefix / "share").rglob("*.cmake"):
        text = cmake_file.read_text(errors="surrogateescape")
        if BUILD_PYTHON_INCLUDE not in text and BUILD_NUMPY_INCLUDE not in text:
            continue
        # numpy first: its path starts with the python prefix of the build machine.
        text = text.replace(BUILD_NUMPY_INCLUDE, numpy_include)
        text = text.replace(BUILD_PYTHON_INCLUDE, python_include)
        cmake_file.write_text(text, errors="surrogateescape")
        rewritten += 1
    print(f"fix_ros_wheel_paths: rewrote {rewritten} CMake file(s) under {prefix}/share")
    return 0


if __name__ == "__main__":
    sys.exit(main())
