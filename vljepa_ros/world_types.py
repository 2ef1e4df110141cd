"""The world model's value types, torch-free, so that both the PyTorch world
model (:mod:`vljepa_ros.world_model`) and the ONNX one
(:mod:`vljepa_ros.runtime.onnx_model`) return the same objects, and code that
only reads results (perception, the nodes) needs no torch."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

CACHE_FRAMES = 64  # frames of backbone features a stream keeps (a window is at most this long)
# Candidate texts of callers kept encoded (about 1 kB each with a 256-d model).
PHRASE_CACHE_TEXTS = 16_384
# Score added to preferred candidates (action_between's ``prefer``): cosines lie
# in [-1, 1], so they rank first, in the predictor's order among themselves.
PREFERRED_BONUS = 2.0


class CandidateCache(OrderedDict):
    """Encoded candidate lists of callers (~/ask, ~/predict_outcome), least
    recently used first, bounded by their total number of TEXTS, not lists:
    256 lists of 200 new candidates each were 50k embeddings. One rule for
    both world models (torch and ONNX)."""

    def __init__(self, max_texts: int = PHRASE_CACHE_TEXTS):
        super().__init__()
        self.max_texts = max_texts

    def get_or_make(self, key: tuple[str, ...], make: Callable[[], Any]) -> Any:
        if key in self:
            self.move_to_end(key)
            return self[key]
        value = self[key] = make()
        total = sum(len(k) for k in self)
        while total > self.max_texts and len(self) > 1:
            old, _ = self.popitem(last=False)
            total -= len(old)
        return value


class FrameInputs(OrderedDict):
    """The model inputs (preprocessed frames) of the latest stamps, oldest
    first, for a model whose reading looks at fact views of the frame
    (``reading_views``): features alone cannot be re-viewed. Bounded like the
    feature cache."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def push(self, stamp_s: float, frame: Any) -> None:
        self[float(stamp_s)] = frame
        while len(self) > self.capacity:
            self.popitem(last=False)

    def frame(self, window: Any) -> Any:
        """The input of a Window's latest frame; ValueError when it is not kept."""
        stamps = getattr(window, "stamps", None)
        if not stamps:
            raise ValueError("a reading with fact views needs a Window of this stream (with its stamps)")
        if float(stamps[-1]) not in self:
            raise ValueError(f"the frame at {stamps[-1]:.3f} s is no longer kept (the last {self.capacity})")
        return self[float(stamps[-1])]


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
class Reading:
    """A state read fact by fact (WorldModel.read_state)."""

    caption: str           # canonical caption of ``state``
    state: dict            # {"objects": [{"colour", "shape", "cell"}], "lamp_on", "arm": None}
    confidence: float      # product of the chosen answers' probabilities
    embedding: Any = field(repr=False)  # (D,) the caption's Y-encoder embedding


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
