"""Inference backends: ``torch`` (the model as trained), ``onnxruntime`` and
``openvino`` (the ONNX graphs that ``vljepa-export`` writes). ROS-free.

This package never imports torch: a node on an ONNX backend loads only
numpy, tokenizers, Pillow and the inference engine (importing torch alone
costs ~220 MB of RSS; docs/benchmarks.md). The export itself
(:mod:`vljepa_ros.export`) needs torch and runs in its own process when a
node finds no export (:func:`vljepa_ros.runtime.onnx_model.ensure_export`).

Where an export is looked for, in this order:

1. ``<checkpoint dir>/onnx/`` (``vljepa-export --out <checkpoint dir>/onnx``),
2. ``$VLJEPA_ROS_CACHE/onnx/<model name>-<hash>/`` (default cache
   ``~/.cache/vljepa_ros``), where ``vljepa-export`` writes by default.

An export is tied to one checkpoint by its ``model_id`` (a hash of the
weights): a retrained checkpoint never runs an old export.
"""

from __future__ import annotations

import os
from pathlib import Path

BACKENDS = ("torch", "onnxruntime", "openvino")
DEFAULT_BACKEND = "torch"  # until the ONNX backends are proven on the robot (issue 13)
ONNX_BACKENDS = ("onnxruntime", "openvino")

EXPORT_FORMAT = "vljepa_ros.onnx/1"
MANIFEST_FILE = "onnx_manifest.json"
EXPORT_DIRNAME = "onnx"
# ONNX opset of every graph: 18 is the first with Resize antialias and the one
# the dynamo exporter emits natively; ONNX Runtime >= 1.14, OpenVINO >= 2023
# and TensorRT >= 8.6 read it.
OPSET = 18

# The graphs of an export: name -> file (inputs/outputs in the manifest).
GRAPH_FILES = {
    "frames": "x_frames.onnx",            # images (B,3,S,S) -> pooled backbone features (B,C,g,g)
    "state": "predictor_state.onnx",      # window (B,T,C,g,g) + query -> (B,D)
    "pair": "predictor_pair.onnx",        # before + after windows + query -> (B,D)
    "text": "y_encoder.onnx",             # text -> target embedding (B,D)
    "decoder_step": "y_decoder_step.onnx",  # embedding + tokens so far -> log-probs of the next token
}
WORDS_FILE = "word_embeddings.npy"      # MiniLM's frozen word table, memory-mapped, shared by all text inputs
TOKENIZER_FILE = "tokenizer.json"       # MiniLM's WordPiece tokenizer (the `tokenizers` format)


class BackendError(RuntimeError):
    """A backend that cannot run as asked; the message names the backend or file."""


def check_backend(name: str) -> str:
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return name


def cache_root() -> Path:
    return Path(os.environ.get("VLJEPA_ROS_CACHE") or Path.home() / ".cache" / "vljepa_ros")


def cache_export_dir(model_id: str) -> Path:
    """The cache directory of one model's export (``name@hash`` -> ``name-hash``)."""
    return cache_root() / EXPORT_DIRNAME / model_id.replace("@", "-").replace(os.sep, "_")


def export_dirs(checkpoint_dir: str | os.PathLike, model_id: str) -> list[Path]:
    """Where an export of this checkpoint is looked for, in order."""
    return [Path(checkpoint_dir) / EXPORT_DIRNAME, cache_export_dir(model_id)]


def load_backend(backend: str, model_path: str | os.PathLike | None = None, threads: int = 1,
                 log=None, auto_export: bool = True):
    """The checkpoint at ``model_path`` (default: the shipped model) on ``backend``:
    a ``checkpoint.Checkpoint`` for torch (torch is imported only then), an
    ``onnx_model.OnnxCheckpoint`` otherwise, its export found or (``auto_export``)
    made in a child process, reported through ``log``. Any problem raises
    BackendError naming the backend or file."""
    check_backend(backend)
    if backend == "torch":
        from ..checkpoint import CheckpointError, load_model

        try:
            return load_model(model_path or None)
        except CheckpointError as e:
            raise BackendError(str(e)) from e
    from .onnx_model import load_onnx_checkpoint

    return load_onnx_checkpoint(model_path or None, backend, threads, auto_export=auto_export, log=log)


__all__ = [
    "BACKENDS", "DEFAULT_BACKEND", "ONNX_BACKENDS", "EXPORT_FORMAT", "MANIFEST_FILE", "OPSET", "GRAPH_FILES",
    "WORDS_FILE", "TOKENIZER_FILE", "BackendError", "check_backend", "cache_root", "cache_export_dir", "export_dirs",
    "load_backend",
]
