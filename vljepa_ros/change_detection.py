"""Change detection on an embedding stream: when to decode text (selective decoding).

VL-JEPA predicts an embedding per frame (window); text comes from a decoder
that is far more expensive than watching the embeddings. This module decides
*when* to decode. Everything here is ROS-free and works on plain numpy:
stamps in seconds of stream time (camera stamps, never wall time) and
L2-normalised float embeddings of shape ``(D,)``.

Online (causal), used by decoder_node and perception_node: :class:`ChangeDetector`
(it decodes nothing itself; its triggers say when the caller should).

    smoothed = EMA(embedding)                 # `smoothing`; 1 = none
    distance = 1 - cos(smoothed, reference)   # reference = mean of the current state
    STABLE   --distance > threshold-->  CHANGING (state_start_s = this frame)
    CHANGING, not yet confirmed:
        distance <= threshold - hysteresis   -> cancelled (a glitch), back to STABLE
        above it for min_dwell_s             -> confirmed
    CHANGING (from the first frame): a settle tracker keeps the mean of the
        frames since the embedding last moved by more than
        settle_fraction * threshold; once that stretch spans settle_s and the
        change is confirmed, decode its mean -- unless it is back within
        threshold - hysteresis of the old reference (the scene returned:
        suppressed, no decode). After max_settle_s without settling, decode the
        latest stretch anyway.
    STABLE: the reference is the running mean of the state's frames; after
        max_silence_s without a decode, a heartbeat re-decodes it.

So one physical transition, however much the scene wanders during it, gives
one trigger: the decoder waits until the motion is over and decodes the
settled state, and state_start_s still reports when the change began.
Known trade-offs: waiting for the scene to settle delays each decode by about
min_dwell_s..settle_s after the motion ends (costs causal quality, buys one
decode per change); motion slower than ~settle_fraction * threshold per
settle_s looks settled and may give one extra decode per slow transition.
``detector.config`` may be replaced at run time (parameter updates); call
:meth:`ChangeDetector.reset` when the query or model changes, because old
and new embeddings are not comparable.

Offline, used by the benchmark: :func:`uniform_decode_times`,
:func:`online_decode_times`, :func:`ward_segments` / :func:`ward_decode_times`
(the paper's evaluated, non-causal variant), and the metrics
:func:`decode_quality`, :func:`decode_similarity`,
:func:`event_precision_recall`.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

__all__ = [
    "ChangeDetectorConfig",
    "Trigger",
    "ChangeDetector",
    "uniform_decode_times",
    "online_decode_times",
    "ward_segments",
    "ward_decode_times",
    "decode_quality",
    "decode_similarity",
    "EVENT_TOLERANCE_S",
    "match_events",
    "event_precision_recall",
]

TriggerKind = Literal["initial", "change", "heartbeat"]

# Camera time going back by more than this restarts a stream (a looped bag, a
# restarted simulation); a smaller step back is a stale or reordered frame.
JUMP_BACK_RESET_S = 1.0


def jumped_back(stamp_s: float, last_s: float | None) -> bool:
    """True when ``stamp_s`` lies more than JUMP_BACK_RESET_S before ``last_s``:
    the stream restarted. The one rule for perception, events and memory."""
    return last_s is not None and stamp_s < last_s - JUMP_BACK_RESET_S


def _finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


@dataclass
class ChangeDetectorConfig:
    """Parameters of :class:`ChangeDetector`. Times are seconds of stream time.

    Defaults suit 10-30 Hz cameras and an embedding space where frame-to-frame
    noise in a static scene is a cosine distance of ~0.01-0.02. ``threshold``
    was chosen on the validation split with ``vljepa-bench --split val``:
    every threshold from 0.02 to 0.13 gave the same events there (precision
    1.00, recall 0.96), and 0.05 is the middle of that plateau on a log scale,
    the value with the most room on both sides (noise below, the smaller
    changes an unseen viewpoint produces above). docs/benchmarks.md has the
    sweep; sweep again for another model.
    """

    smoothing: float = 0.5
    """EMA weight of the newest embedding, in (0, 1]; 1 = no smoothing."""
    threshold: float = 0.05
    """Cosine distance (1 - cos) from the current state's reference that counts as changed, in (0, 2)."""
    hysteresis: float = 0.025
    """A change stays alive until the distance falls to threshold - hysteresis or below; in [0, threshold)."""
    min_dwell_s: float = 0.3
    """A change must stay above threshold - hysteresis this long before it is confirmed (glitch filter)."""
    settle_s: float = 0.5
    """The new state must hold still this long before it is decoded (from the mean of that stretch)."""
    settle_fraction: float = 0.3
    """'Holding still' = the smoothed embedding stays within settle_fraction * threshold of the
    stretch's mean; in (0, 1]."""
    max_settle_s: float = 3.0
    """After a confirmed change, decode at the latest this long later even if the scene keeps moving; >= settle_s."""
    max_silence_s: float = 0.0
    """Heartbeat: re-decode the current state after this long without a decode; 0 = never."""

    def __post_init__(self) -> None:
        self.smoothing = _finite("smoothing", self.smoothing)
        if not 0.0 < self.smoothing <= 1.0:
            raise ValueError(f"smoothing must be in (0, 1] (1 = no smoothing), got {self.smoothing}")
        self.threshold = _finite("threshold", self.threshold)
        if not 0.0 < self.threshold < 2.0:
            raise ValueError(f"threshold is a cosine distance and must be in (0, 2), got {self.threshold}")
        self.hysteresis = _finite("hysteresis", self.hysteresis)
        if not 0.0 <= self.hysteresis < self.threshold:
            raise ValueError(
                f"hysteresis must be in [0, threshold={self.threshold}), got {self.hysteresis}"
            )
        for name in ("min_dwell_s", "settle_s", "max_settle_s", "max_silence_s"):
            value = _finite(name, getattr(self, name))
            if value < 0.0:
                raise ValueError(f"{name} must be >= 0 seconds, got {value}")
            setattr(self, name, value)
        self.settle_fraction = _finite("settle_fraction", self.settle_fraction)
        if not 0.0 < self.settle_fraction <= 1.0:
            raise ValueError(f"settle_fraction must be in (0, 1], got {self.settle_fraction}")
        if self.max_settle_s < self.settle_s:
            raise ValueError(
                f"max_settle_s ({self.max_settle_s}) must be >= settle_s ({self.settle_s}), "
                "or a change could never settle"
            )


@dataclass(frozen=True)
class Trigger:
    """A decision to decode. The caller turns ``decode_embedding`` into text."""

    kind: TriggerKind
    stamp_s: float
    """Stream time of the frame that produced the trigger (when it was decided)."""
    state_start_s: float
    """Stream time the described state began: first frame past the threshold (first frame for 'initial')."""
    decode_embedding: np.ndarray = field(repr=False)
    """L2-normalised mean of the state's settled embeddings, float32 (D,)."""
    change_score: float
    """'change': cosine distance between the new state's and the old state's embedding.
    'heartbeat': current distance to the state's reference. 'initial': 0."""
    previous_start_s: float | None
    """state_start_s of the previously decoded state (None for 'initial'; the same state for 'heartbeat')."""


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0.0 else v


class _SettleTracker:
    """Mean of the frames since the embedding last moved (see the module docstring)."""

    def __init__(self, stamp: float, raw: np.ndarray, smoothed: np.ndarray) -> None:
        self.restart(stamp, raw, smoothed)

    def restart(self, stamp: float, raw: np.ndarray, smoothed: np.ndarray) -> None:
        self.start_s = stamp
        self.smooth_sum = smoothed.astype(np.float64, copy=True)
        self.raw_sum = raw.astype(np.float64, copy=True)

    def update(self, stamp: float, raw: np.ndarray, smoothed: np.ndarray, tolerance: float) -> None:
        # Compare with the mean of the *smoothed* stretch: noise is low there,
        # so only real motion restarts the stretch.
        if 1.0 - float(np.dot(smoothed, _unit(self.smooth_sum))) > tolerance:
            self.restart(stamp, raw, smoothed)
        else:
            self.smooth_sum += smoothed
            self.raw_sum += raw

    def held_s(self, stamp: float) -> float:
        return stamp - self.start_s

    def embedding(self) -> np.ndarray:
        # Decode from raw frames: their mean is unbiased, the EMA lags.
        return _unit(self.raw_sum).astype(np.float32)


class ChangeDetector:
    """Online, causal change detector over a stream of embeddings (selective decoding's trigger).

    Feed every processed frame to :meth:`update`; it returns a
    :class:`Trigger` when text should be decoded, else None. Memory is
    constant (running sums only), whatever the stream length.

    Counters: ``seen`` (frames accepted), ``triggers`` (all kinds),
    ``stale`` (stamps not newer than the last accepted one: ignored),
    ``invalid`` (NaN/inf/zero/wrong-shape embeddings: rejected),
    ``cancelled`` (candidate changes that fell back before min_dwell_s),
    ``suppressed`` (confirmed changes that settled back on the old state),
    ``forced`` (decodes after max_settle_s without settling).
    ``last_rejection`` holds the reason of the latest stale/invalid frame.
    """

    def __init__(self, config: ChangeDetectorConfig | None = None) -> None:
        self.config = config if config is not None else ChangeDetectorConfig()
        self.reset()

    # -- public --------------------------------------------------------------

    def reset(self) -> None:
        """Forget the stream (e.g. after the query or the model changed). Counters restart too."""
        self._dim: int | None = None
        self._last_stamp: float | None = None
        self._smoothed: np.ndarray | None = None
        self._phase = "init"  # "init" | "stable" | "changing"
        # Current (last decoded) state.
        self._ref_sum: np.ndarray | None = None
        self._ref: np.ndarray | None = None
        self._segment_start: float | None = None
        self._last_emit_s: float | None = None
        # Change in progress.
        self._cand_start = 0.0
        self._confirmed = False
        self._settle: _SettleTracker | None = None
        self.seen = 0
        self.triggers = 0
        self.stale = 0
        self.invalid = 0
        self.cancelled = 0
        self.suppressed = 0
        self.forced = 0
        self.last_rejection = ""

    def counters(self) -> dict[str, int]:
        return {
            "seen": self.seen,
            "triggers": self.triggers,
            "stale": self.stale,
            "invalid": self.invalid,
            "cancelled": self.cancelled,
            "suppressed": self.suppressed,
            "forced": self.forced,
        }

    @property
    def phase(self) -> str:
        """'init' (before the first decode), 'stable' or 'changing' (a change in progress)."""
        return self._phase

    @property
    def change_start_s(self) -> float | None:
        """Stream time the change in progress began (None unless the phase is 'changing')."""
        return self._cand_start if self._phase == "changing" else None

    @property
    def reference(self) -> np.ndarray | None:
        """Embedding of the current decoded state (None before the initial trigger)."""
        return None if self._ref is None else self._ref.astype(np.float32)

    def update(self, stamp_s: float, embedding: np.ndarray) -> Trigger | None:
        stamp = float(stamp_s)
        emb = self._validate(stamp, embedding)
        if emb is None:
            return None
        self.seen += 1
        self._last_stamp = stamp
        a = self.config.smoothing
        self._smoothed = emb.copy() if self._smoothed is None else _unit(a * emb + (1.0 - a) * self._smoothed)

        if self._phase == "init":
            trigger = self._update_init(stamp, emb)
        elif self._phase == "stable":
            trigger = self._update_stable(stamp, emb)
        else:
            trigger = self._update_changing(stamp, emb)
        if trigger is not None:
            self.triggers += 1
            self._last_emit_s = stamp
        return trigger

    # -- internals -----------------------------------------------------------

    def _validate(self, stamp: float, embedding: np.ndarray) -> np.ndarray | None:
        if not math.isfinite(stamp):
            self.invalid += 1
            self.last_rejection = f"stamp {stamp} is not finite"
            return None
        if self._last_stamp is not None and stamp <= self._last_stamp:
            # Out of order or duplicate (e.g. a bag loop or two publishers):
            # the state machine only moves forward in time.
            self.stale += 1
            self.last_rejection = f"stamp {stamp:.6f} is not newer than {self._last_stamp:.6f}"
            return None
        emb = np.asarray(embedding, dtype=np.float64).reshape(-1)
        if self._dim is not None and emb.shape[0] != self._dim:
            self.invalid += 1
            self.last_rejection = (f"embedding has {emb.shape[0]} dims, the stream has {self._dim} "
                                   "(reset() after a model change)")
            return None
        if emb.size == 0 or not np.all(np.isfinite(emb)):
            self.invalid += 1
            self.last_rejection = "embedding is empty or contains NaN/inf"
            return None
        norm = float(np.linalg.norm(emb))
        if norm < 1e-12:
            self.invalid += 1
            self.last_rejection = "embedding has zero norm"
            return None
        self._dim = emb.shape[0]
        # Inputs should already be unit length; renormalising is cheap insurance.
        return emb / norm

    def _distance_to_ref(self) -> float:
        return 1.0 - float(np.dot(self._smoothed, self._ref))

    def _settle_tolerance(self) -> float:
        return self.config.settle_fraction * self.config.threshold

    def _update_init(self, stamp: float, emb: np.ndarray) -> Trigger | None:
        cfg = self.config
        if self._settle is None:
            self._cand_start = stamp
            self._settle = _SettleTracker(stamp, emb, self._smoothed)
        else:
            self._settle.update(stamp, emb, self._smoothed, self._settle_tolerance())
        settled = self._settle.held_s(stamp) >= cfg.settle_s
        if not settled and stamp - self._cand_start < cfg.max_settle_s:
            return None
        if not settled:
            self.forced += 1
        decode = self._settle.embedding()
        self._start_segment(self._cand_start, self._settle)
        return Trigger("initial", stamp, self._cand_start, decode, 0.0, None)

    def _update_stable(self, stamp: float, emb: np.ndarray) -> Trigger | None:
        cfg = self.config
        distance = self._distance_to_ref()
        if distance > cfg.threshold:
            self._phase = "changing"
            self._cand_start = stamp
            self._confirmed = cfg.min_dwell_s <= 0.0
            self._settle = _SettleTracker(stamp, emb, self._smoothed)
            return self._maybe_finish_change(stamp)
        if distance <= cfg.threshold - cfg.hysteresis:
            # Only clearly-stable frames refine the reference; frames in the
            # hysteresis band neither move it nor trigger.
            self._ref_sum += emb
            self._ref = _unit(self._ref_sum)
        if cfg.max_silence_s > 0.0 and stamp - self._last_emit_s >= cfg.max_silence_s:
            return Trigger(
                "heartbeat", stamp, self._segment_start, self._ref.astype(np.float32), distance, self._segment_start
            )
        return None

    def _update_changing(self, stamp: float, emb: np.ndarray) -> Trigger | None:
        cfg = self.config
        distance = self._distance_to_ref()
        if not self._confirmed:
            if distance <= cfg.threshold - cfg.hysteresis:
                self.cancelled += 1
                self._phase = "stable"
                self._settle = None
                return None
            if stamp - self._cand_start >= cfg.min_dwell_s:
                self._confirmed = True
        self._settle.update(stamp, emb, self._smoothed, self._settle_tolerance())
        return self._maybe_finish_change(stamp)

    def _maybe_finish_change(self, stamp: float) -> Trigger | None:
        cfg = self.config
        if not self._confirmed:
            return None
        settled = self._settle.held_s(stamp) >= cfg.settle_s
        forced = stamp - self._cand_start >= cfg.min_dwell_s + cfg.max_settle_s
        if not (settled or forced):
            return None
        decode = self._settle.embedding()
        score = 1.0 - float(np.dot(decode.astype(np.float64), self._ref))
        if score <= cfg.threshold - cfg.hysteresis:
            # The scene moved and came back (a hand passing, the arm leaving):
            # the settled state is the old one, so there is nothing new to say.
            self.suppressed += 1
            self._phase = "stable"
            self._settle = None
            return None
        if forced and not settled:
            self.forced += 1
        previous = self._segment_start
        self._start_segment(self._cand_start, self._settle)
        return Trigger("change", stamp, self._cand_start, decode, score, previous)

    def _start_segment(self, start: float, settle: _SettleTracker) -> None:
        # The new state's reference starts as the mean of its settled frames
        # and keeps averaging while the state is stable.
        self._ref_sum = settle.raw_sum.copy()
        self._ref = _unit(self._ref_sum)
        self._segment_start = start
        self._phase = "stable"
        self._settle = None


# ---------------------------------------------------------------------------
# Offline policies (benchmark)
# ---------------------------------------------------------------------------


def uniform_decode_times(n_frames: int, stride: int) -> list[int]:
    """Uniform baseline: decode frames 0, stride, 2*stride, ... below n_frames."""
    if int(stride) < 1:
        raise ValueError(f"stride must be >= 1 frame, got {stride}")
    if int(n_frames) < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    return list(range(0, int(n_frames), int(stride)))


def online_decode_times(
    stamps: Sequence[float] | np.ndarray,
    embeddings: np.ndarray,
    config: ChangeDetectorConfig | None = None,
) -> list[tuple[int, Trigger]]:
    """Run :class:`ChangeDetector` over a recorded stream; (frame index, trigger) per decode.

    The frame index is the frame at which the trigger fired (causal: the text
    is available from that frame on).
    """
    emb = np.asarray(embeddings)
    if emb.ndim != 2 or emb.shape[0] != len(stamps):
        raise ValueError(f"embeddings must be (N, D) with N = len(stamps) = {len(stamps)}, got {emb.shape}")
    detector = ChangeDetector(config)
    out: list[tuple[int, Trigger]] = []
    for i, (stamp, e) in enumerate(zip(stamps, emb)):
        trigger = detector.update(float(stamp), e)
        if trigger is not None:
            out.append((i, trigger))
    return out


def ward_segments(embeddings: np.ndarray, n_segments: int) -> list[tuple[int, int]]:
    """Split a sequence into ``n_segments`` contiguous segments by Ward clustering.

    Agglomerative clustering with temporal connectivity: start from single
    frames and repeatedly merge the *adjacent* pair whose merge increases the
    within-segment sum of squares least (Ward: n_a n_b / (n_a + n_b) *
    |mean_a - mean_b|^2). Heap with lazy invalidation: O(N log N).
    Returns half-open ``(start, end)`` frame ranges in time order.
    Non-causal (it sees the whole sequence): the paper's evaluated variant.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got {x.shape}")
    n = x.shape[0]
    if n == 0:
        return []
    k = int(n_segments)
    if k < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    k = min(k, n)

    # Segment i is identified by its first frame; linked list over segments.
    size = np.ones(n, dtype=np.int64)
    total = x.copy()  # sum of the segment's embeddings (mean = total / size)
    nxt = list(range(1, n + 1))  # n = no next
    prv = list(range(-1, n - 1))
    alive = [True] * n
    version = [0] * n  # bumped whenever segment i changes; stale heap entries are skipped

    def cost(a: int, b: int) -> float:
        diff = total[a] / size[a] - total[b] / size[b]
        return float(size[a] * size[b] / (size[a] + size[b]) * np.dot(diff, diff))

    # Heap entries: (cost, left, version[left], right, version[right]).
    heap = [(cost(i, i + 1), i, 0, i + 1, 0) for i in range(n - 1)]
    heapq.heapify(heap)
    segments = n
    while segments > k and heap:
        _, a, va, b, vb = heapq.heappop(heap)
        if not (alive[a] and alive[b]) or version[a] != va or version[b] != vb:
            continue
        # Merge b into a.
        total[a] += total[b]
        size[a] += size[b]
        alive[b] = False
        nxt[a] = nxt[b]
        if nxt[a] < n:
            prv[nxt[a]] = a
        version[a] += 1
        segments -= 1
        if prv[a] >= 0:
            p = prv[a]
            heapq.heappush(heap, (cost(p, a), p, version[p], a, version[a]))
        if nxt[a] < n:
            q = nxt[a]
            heapq.heappush(heap, (cost(a, q), a, version[a], q, version[q]))

    out = []
    i = 0
    while i < n:
        out.append((i, nxt[i]))
        i = nxt[i]
    return out


def ward_decode_times(
    embeddings: np.ndarray, n_segments: int, at: Literal["midpoint", "start"] = "midpoint"
) -> list[tuple[int, np.ndarray]]:
    """One decode per Ward segment: (frame index, L2-normalised mean embedding of the segment).

    ``at="midpoint"`` is the paper's protocol; ``"start"`` places the decode at
    the segment's first frame (better under the causal quality metric, still
    non-causal because the segmentation saw the future).
    """
    if at not in ("midpoint", "start"):
        raise ValueError(f"at must be 'midpoint' or 'start', got {at!r}")
    x = np.asarray(embeddings, dtype=np.float64)
    out = []
    for start, end in ward_segments(x, n_segments):
        frame = (start + end - 1) // 2 if at == "midpoint" else start
        out.append((frame, _unit(x[start:end].mean(axis=0)).astype(np.float32)))
    return out


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def _current_decode_index(n_frames: int, decode_frames: Sequence[int]) -> np.ndarray:
    """For every frame, the index (into decode_frames) of the latest decode at or before it; -1 if none.

    Decodes are ordered by frame (stable, so of several decodes at one frame
    the last one listed wins).
    """
    frames = np.asarray(decode_frames, dtype=np.int64).reshape(-1)
    if frames.size == 0:
        return np.full(n_frames, -1, dtype=np.int64)
    if frames.min() < 0:
        raise ValueError("decode frame indices must be >= 0")
    order = np.argsort(frames, kind="stable")
    pos = np.searchsorted(frames[order], np.arange(n_frames), side="right") - 1
    return np.where(pos >= 0, order[np.maximum(pos, 0)], -1)


def decode_quality(
    frame_truth_ids: Sequence[Hashable],
    decode_frames: Sequence[int],
    decoded_ids: Sequence[Hashable],
) -> float:
    """Mean over frames of [current output == truth].

    The current output at a frame is the most recent decode at or before it
    (causal); frames before the first decode score 0.
    """
    if len(decode_frames) != len(decoded_ids):
        raise ValueError(f"{len(decode_frames)} decode frames but {len(decoded_ids)} decoded ids")
    n = len(frame_truth_ids)
    if n == 0:
        raise ValueError("no frames to score")
    current = _current_decode_index(n, decode_frames)
    hits = sum(1 for t, c in zip(frame_truth_ids, current) if c >= 0 and decoded_ids[c] == t)
    return hits / n


def decode_similarity(
    truth_embeddings: np.ndarray, decode_frames: Sequence[int], decoded_embeddings: np.ndarray
) -> float:
    """Second quality metric: mean cosine similarity between the current output's and the truth's embedding.

    Same causal rule as :func:`decode_quality`; frames before the first decode score 0.
    """
    truth = np.asarray(truth_embeddings, dtype=np.float64)
    if truth.ndim != 2 or truth.shape[0] == 0:
        raise ValueError(f"truth_embeddings must be (N, D) with N > 0, got {truth.shape}")
    decoded = np.asarray(decoded_embeddings, dtype=np.float64).reshape(len(decode_frames), truth.shape[1])
    current = _current_decode_index(truth.shape[0], decode_frames)
    truth = truth / np.maximum(np.linalg.norm(truth, axis=1, keepdims=True), 1e-12)
    decoded = decoded / np.maximum(np.linalg.norm(decoded, axis=1, keepdims=True), 1e-12)
    sims = np.zeros(truth.shape[0])
    has = current >= 0
    if np.any(has):
        sims[has] = np.sum(truth[has] * decoded[current[has]], axis=1)
    return float(sims.mean())


# An event "finds" a true transition when its state start is this close to it
# (camera time): the evaluation's tolerance, everywhere (evaluation.md).
EVENT_TOLERANCE_S = 0.5


def match_events(
    event_times_s: Sequence[float],
    true_transition_times_s: Sequence[float],
    tolerance_s: float = EVENT_TOLERANCE_S,
) -> list[tuple[int, int]]:
    """The one rule that pairs detected events with true transitions
    (benchmark, demo and integration test all use it): one-to-one, an event
    within ``tolerance_s`` of a transition may take it, and the matching is
    maximal. With equal-width windows on a line the greedy two-pointer sweep
    over sorted times is optimal. Returns (event index, transition index)
    pairs into the given sequences, in time order."""
    if tolerance_s < 0:
        raise ValueError(f"tolerance_s must be >= 0, got {tolerance_s}")
    events = sorted(range(len(event_times_s)), key=lambda k: float(event_times_s[k]))
    truths = sorted(range(len(true_transition_times_s)), key=lambda k: float(true_transition_times_s[k]))
    i = j = 0
    pairs = []
    while i < len(events) and j < len(truths):
        e, t = float(event_times_s[events[i]]), float(true_transition_times_s[truths[j]])
        if abs(e - t) <= tolerance_s:
            pairs.append((events[i], truths[j]))
            i += 1
            j += 1
        elif e < t:
            i += 1  # too early for this and every later truth: a false alarm
        else:
            j += 1  # every remaining event is too late for this truth: a miss
    return pairs


def event_precision_recall(
    event_times_s: Sequence[float],
    true_transition_times_s: Sequence[float],
    tolerance_s: float = EVENT_TOLERANCE_S,
) -> tuple[float, float]:
    """Precision and recall of detected events against true transitions,
    matched by ``match_events``. Conventions: no events -> precision 1.0 (no
    false alarms); no true transitions -> recall 1.0.
    """
    matched = len(match_events(event_times_s, true_transition_times_s, tolerance_s))
    precision = matched / len(event_times_s) if len(event_times_s) else 1.0
    recall = matched / len(true_transition_times_s) if len(true_transition_times_s) else 1.0
    return precision, recall
