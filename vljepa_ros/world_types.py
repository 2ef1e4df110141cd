"""The world model's value types, torch-free, so that both the PyTorch world
model (:mod:`vljepa_ros.world_model`) and the ONNX one
(:mod:`vljepa_ros.runtime.onnx_model`) return the same objects, and code that
only reads results (perception, the nodes) needs no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

CACHE_FRAMES = 64  # frames of backbone features a stream keeps (a window is at most this long)


@dataclass(frozen=True)
class Decoded:
    """A Y-decoder's text for one embedding."""

    text: str
    confidence: float


@dataclass
class QueryTemplates:
    state: str = "what is on the table?"
    action: str = "what action happened?"
    outcome: str = "what happens if the robot does: {action}?"

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Window:
    features: Any  # (T,C,g,g), oldest first: a torch.Tensor (torch backend) or np.ndarray (ONNX backends)
    stamps: tuple[float, ...]  # seconds, one per frame


@dataclass
class Ranked:
    """Candidates best first. scores: cosine similarity; probabilities: softmax(scores / temperature)."""

    labels: list[str]
    scores: list[float]
    probabilities: list[float]
    embedding: Any = field(repr=False)  # (D,) the predicted embedding that was ranked (tensor or array)

    @property
    def top(self) -> str:
        return self.labels[0]
