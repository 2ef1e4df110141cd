"""Semantic memory, ROS-free: what memory_node runs.

    embedding stream --MomentSegmenter--> moments --MomentStore--> disk
    text --Y-encoder (the same model)--> query embedding --cosine--> moments

A text query is embedded with the Y-encoder of the model that produced the
stored embeddings (the paper's text-to-video retrieval): no captioning, no
detector. Moments of another model id are kept but never compared: their
embeddings live in another space. The open moment (the current state) is
answered from memory, the closed ones from the store.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np

from ..change_detection import ChangeDetectorConfig, jumped_back
from .moments import NS, Moment, MomentSegmenter, Pose
from .store import Hit, MomentStore, StoreError


def default_memory_dir() -> str:
    """$ROS_HOME/vljepa_memory (ROS_HOME defaults to ~/.ros, where ROS keeps its logs)."""
    return os.path.join(os.environ.get("ROS_HOME") or os.path.expanduser("~/.ros"), "vljepa_memory")


# One definition of every memory parameter: (range, description). memory_node
# declares them from this table; MemoryConfig validates against it.
MEMORY_PARAMS = {
    "flush_batch": ((1, 10_000), "Closed moments written per commit; a kill -9 loses at most this many "
                                 "(plus the open moment)."),
    "flush_period_s": ((0.0, 3600.0), "Write buffered moments at least this often (seconds, wall time); 0 = only "
                                      "by flush_batch."),
    "default_top_k": ((1, 1000), "Moments the demo and the evaluation ask for (a request's top_k 0 is an "
                                 "error, not this default: a planner must say how many it wants)."),
    "max_top_k": ((1, 100_000), "Largest top_k served; a larger request is capped and the reply says so."),
    "max_query_chars": ((1, 100_000), "Longest query text accepted (the Y-encoder reads 128 tokens anyway)."),
    "match_margin": ((0.0, 2.0), "'Matching X' for ~/latest: cosine to X within this of the best moment's."),
    "min_score": ((-1.0, 1.0), "'Matching X' for ~/latest also needs at least this cosine to X."),
    "latest_candidates": ((1, 100_000), "~/latest looks at this many best moments for the latest match."),
    "event_match_s": ((0.0, 60.0), "A SemanticEvent describes the moment whose start is within this many "
                                   "seconds of the event's stamp."),
    "index_min_rows": ((1, 100_000_000), "Build the vector index from this many stored moments on (exact "
                                         "scan below it)."),
}


@dataclass
class MemoryConfig:
    flush_batch: int = 1
    flush_period_s: float = 5.0
    default_top_k: int = 5
    max_top_k: int = 1000
    max_query_chars: int = 1000
    # chosen on val (3 episodes, tabletop@49448a89dd38, `evaluate --split val --margins ...`): 0.1 gave the
    # smallest "last change" errors of 0.03-0.4; partial descriptions ("the lamp is off") score a wide
    # band across the moments they fit, so a margin of a few hundredths keeps too few of them
    match_margin: float = 0.1
    min_score: float = -1.0
    latest_candidates: int = 200
    event_match_s: float = 1.0
    index_min_rows: int = 50_000

    def __post_init__(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            low, high = MEMORY_PARAMS[f.name][0]
            if isinstance(value, float) and not math.isfinite(value):
                problems.append(f"{f.name}={value} is not finite")
            elif not low <= value <= high:
                problems.append(f"{f.name}={value} is outside [{low}, {high}]")
        if problems:
            raise ValueError("invalid memory parameters: " + "; ".join(problems))


@dataclass
class QueryResult:
    success: bool
    message: str
    hits: list[Moment] = field(default_factory=list)   # best first; .score = cosine to the query
    skipped_other_models: int = 0


@dataclass
class LatestResult:
    success: bool
    message: str
    moment: Moment | None = None
    since_ns: int = 0          # start of the run of consecutive matching moments that ends with `moment`
    matches: int = 0
    skipped_other_models: int = 0


class SemanticMemory:
    """Segmentation + store + queries for one model.

    ``encode_text(texts) -> (N, D)`` unit rows: the model's Y-encoder.
    ``pose_lookup(stamp_ns, frame_id) -> Pose | None``: the camera pose at capture time.
    """

    def __init__(self, store: MomentStore, model_id: str, encode_text: Callable[[list[str]], np.ndarray],
                 config: MemoryConfig | None = None, change_config: ChangeDetectorConfig | None = None,
                 pose_lookup: Callable[[int, str], Pose | None] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.model_id = model_id
        self.encode_text = encode_text
        self.config = config or MemoryConfig()
        self.pose_lookup = pose_lookup or (lambda stamp_ns, frame_id: None)
        self.segmenter = MomentSegmenter(model_id, change_config)
        self._clock = clock
        self._pending: list[Moment] = []
        self._last_flush = clock()
        self._last_ns: int | None = None
        self.flushed = 0
        self.write_errors = 0
        self.last_error = ""
        self.events_attached = 0
        self.events_unmatched = 0
        counts = store.model_counts()
        self._own = counts.get(model_id, 0)
        self._other = sum(c for m, c in counts.items() if m != model_id)
        self._other_models = sorted(m for m in counts if m != model_id)

    # ---- stream ----------------------------------------------------------------
    def add_embedding(self, stamp_ns: int, embedding: np.ndarray, frame_id: str = "") -> list[Moment]:
        """One embedding of the stream; returns the moments it closed (already queued for the store)."""
        stamp_ns = int(stamp_ns)
        closed = []
        if self._last_ns is not None and jumped_back(stamp_ns / NS, self._last_ns / NS):
            closed += self.segmenter.reset()  # time went back: a bag loop, a restarted simulation
        self._last_ns = stamp_ns if self._last_ns is None else max(self._last_ns, stamp_ns)
        closed += self.segmenter.update(stamp_ns, embedding, frame_id)
        current = self.segmenter.current
        if current is not None and current.pose is None and current.n_frames == 1:
            current.pose = self.pose_lookup(current.start_ns, current.frame_id)
        for m in closed:
            if m.pose is None:  # the pose may have arrived after the moment opened
                m.pose = self.pose_lookup(m.start_ns, m.frame_id)
        self._pending += closed
        self.flush(force=False)
        return closed

    def attach_event(self, stamp_ns: int, text: str, action: str = "", action_confidence: float = 0.0,
                     model_id: str = "") -> bool:
        """A SemanticEvent (its header.stamp is when the state began) names a moment: keep its text."""
        if model_id and model_id != self.model_id:
            self.events_unmatched += 1
            return False
        tol = int(self.config.event_match_s * NS)
        candidates = ([self.segmenter.current] if self.segmenter.current else []) + self._pending[::-1]
        best = min(candidates, key=lambda m: abs(m.start_ns - stamp_ns), default=None)
        if best is not None and abs(best.start_ns - stamp_ns) <= tol:
            best.text, best.action, best.action_confidence = text, action, float(action_confidence)
            self.events_attached += 1
            return True
        near = self.store.moments_between(self.model_id, stamp_ns - tol, stamp_ns + tol, 4)
        near.sort(key=lambda m: abs(m.start_ns - stamp_ns))
        if near:
            self.store.update_event(near[0].id, self.model_id, text, action, action_confidence)
            self.events_attached += 1
            return True
        self.events_unmatched += 1
        return False

    def flush(self, force: bool = True) -> int:
        """Write the queued closed moments (all of them if ``force``); returns how many were written.
        A write error keeps them queued (retried on the next flush) and is reported in stats."""
        if not self._pending:
            return 0
        due = (force or len(self._pending) >= self.config.flush_batch
               or (self.config.flush_period_s > 0 and self._clock() - self._last_flush >= self.config.flush_period_s))
        if not due:
            return 0
        batch = list(self._pending)
        try:
            self.store.add(batch)
        except StoreError as e:
            self.write_errors += 1
            self.last_error = str(e)
            if len(self._pending) > 100_000:  # never grow without bound while the disk is full
                del self._pending[: len(self._pending) - 100_000]
            return 0
        del self._pending[: len(batch)]
        self._last_flush = self._clock()
        self.flushed += len(batch)
        self._own += len(batch)
        self.last_error = ""
        return len(batch)

    def close(self) -> int:
        """End the open moment and write everything (clean shutdown)."""
        self._pending += self.segmenter.close()
        return self.flush(force=True)

    # ---- queries ---------------------------------------------------------------
    def _check_text(self, text: str) -> str | None:
        if not isinstance(text, str) or not text.strip():
            return "query text is empty"
        if len(text) > self.config.max_query_chars:
            return (f"query text has {len(text):,} characters; the limit is {self.config.max_query_chars:,} "
                    "(parameter max_query_chars)")
        return None

    @staticmethod
    def _check_window(window_ns, region) -> str | None:
        if window_ns is not None and window_ns[0] > window_ns[1]:
            return (f"time window is reversed: start {window_ns[0] / NS:.3f} s is after end "
                    f"{window_ns[1] / NS:.3f} s")
        if region is not None:
            lo, hi = region
            if not all(math.isfinite(v) for v in (*lo, *hi)):
                return "region bounds must be finite numbers"
            if any(a > b for a, b in zip(lo, hi)):
                return f"region is reversed: min {tuple(lo)} is above max {tuple(hi)} on some axis"
        return None

    def _embed(self, text: str) -> np.ndarray:
        return np.asarray(self.encode_text([text]), np.float32).reshape(-1)

    def _skipped_note(self) -> str:
        if not self._other:
            return ""
        return (f"; {self._other:,} stored moments of other models ({', '.join(self._other_models[:3])}"
                f"{', ...' if len(self._other_models) > 3 else ''}) are kept but not compared: their "
                f"embeddings are not comparable with {self.model_id}'s")

    def _candidates(self, q: np.ndarray, k: int, window_ns, region) -> list[Moment]:
        """Store hits + the open and queued moments (not in the store yet), best first."""
        hits = self.store.search(q, self.model_id, k, window_ns, region)
        extra = [m for m in ([self.segmenter.current] if self.segmenter.current else []) + self._pending
                 if _in(m, window_ns, region)]
        extra_hits = [Hit(m, float(np.dot(m.embedding, q))) for m in extra]
        seen = {h.moment.id for h in extra_hits}
        merged = extra_hits + [h for h in hits if h.moment.id not in seen]
        merged.sort(key=lambda h: -h.score)
        out = []
        for h in merged[:k]:
            m = _copy(h.moment)
            m.score = h.score
            out.append(m)
        return out

    def query(self, text: str, top_k: int, window_ns: tuple[int, int] | None = None,
              region: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None) -> QueryResult:
        """The top-k moments for a text, best first."""
        reason = self._check_text(text) or self._check_window(window_ns, region)
        if reason is None and int(top_k) < 1:
            reason = f"top_k must be at least 1, got {top_k}"
        if reason:
            return QueryResult(False, reason)
        note = ""
        k = int(top_k)
        if k > self.config.max_top_k:
            note = f"top_k {k:,} capped to {self.config.max_top_k:,} (parameter max_top_k)"
            k = self.config.max_top_k
        hits = self._candidates(self._embed(text), k, window_ns, region)
        message = f"{len(hits)} moments" + (f"; {note}" if note else "")
        if not hits:
            message = "no stored moment " + ("in this window/region" if window_ns or region else "yet") + \
                      (f"; {note}" if note else "")
        return QueryResult(True, message + self._skipped_note(), hits, self._other)

    def latest(self, text: str, window_ns: tuple[int, int] | None = None,
               region: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None) -> LatestResult:
        """The latest moment matching a text ("where is it now", "when did it last change").

        Matching: cosine to the text within match_margin of the best moment's
        (and >= min_score), among the latest_candidates best. ``since_ns`` is
        the start of the run of consecutive matching moments that ends with
        the latest one: when X last became true."""
        reason = self._check_text(text) or self._check_window(window_ns, region)
        if reason:
            return LatestResult(False, reason)
        cands = self._candidates(self._embed(text), self.config.latest_candidates, window_ns, region)
        if not cands:
            return LatestResult(False, "no stored moment " + ("in this window/region" if window_ns or region
                                                               else "yet") + self._skipped_note(),
                                skipped_other_models=self._other)
        best = cands[0].score
        cut = max(self.config.min_score, best - self.config.match_margin)
        matching = [m for m in cands if m.score >= cut]
        if not matching:
            return LatestResult(False, f"no moment scores at least min_score={self.config.min_score} "
                                       f"(best {best:.3f})" + self._skipped_note(), skipped_other_models=self._other)
        latest = max(matching, key=lambda m: m.start_ns)
        since = latest.start_ns
        # walk back while the moment just before is also a match (a change that
        # did not affect X, e.g. another object moved, splits X's time into moments)
        match_ids = {m.id for m in matching}
        for prev in self._previous_moments(latest.start_ns, window_ns, region):
            if prev.id not in match_ids:
                break
            since = prev.start_ns
        return LatestResult(True, f"{len(matching)} matching moments" + self._skipped_note(), latest, since,
                            len(matching), self._other)

    def _previous_moments(self, before_ns: int, window_ns, region, limit: int = 64) -> list[Moment]:
        """Moments that started before ``before_ns``, latest first (for the run of matches)."""
        lo = window_ns[0] if window_ns else 0
        rows = self.store.moments_between(self.model_id, lo, before_ns - 1, limit)
        extra = [m for m in ([self.segmenter.current] if self.segmenter.current else []) + self._pending
                 if m.start_ns < before_ns]
        by_id = {m.id: m for m in rows + extra if _in(m, window_ns, region)}
        return sorted(by_id.values(), key=lambda m: -m.start_ns)[:limit]

    @property
    def pending(self) -> int:
        """Closed moments not yet written."""
        return len(self._pending)

    @property
    def stored_this_model(self) -> int:
        """Moments of this model in the store (a counter: no store scan)."""
        return self._own

    def stats(self) -> dict:
        rng = self.store.stamp_range(self.model_id)
        current = self.segmenter.current
        if current is not None:
            rng = (min(rng[0], current.start_ns) if rng else current.start_ns,
                   max(rng[1], current.end_ns) if rng else current.end_ns)
        return {"model_id": self.model_id, "uri": self.store.uri, "stored": self._own + self._other,
                "stored_this_model": self._own, "stored_other_models": self._other,
                "other_model_ids": list(self._other_models), "pending": len(self._pending),
                "open": current is not None, "flushed": self.flushed, "write_errors": self.write_errors,
                "last_error": self.last_error, "oldest_ns": rng[0] if rng else 0, "newest_ns": rng[1] if rng else 0,
                "disk_bytes": self.store.disk_bytes(), "events_attached": self.events_attached,
                "events_unmatched": self.events_unmatched, "embeddings": self.segmenter.detector.seen,
                "rejected": self.segmenter.detector.invalid + self.segmenter.detector.stale}


def _in(m: Moment, window_ns, region) -> bool:
    if window_ns is not None and not (m.start_ns <= window_ns[1] and m.end_ns >= window_ns[0]):
        return False
    if region is not None:
        if m.pose is None:
            return False
        lo, hi = region
        return all(a <= p <= b for p, a, b in zip(m.pose.position, lo, hi))
    return True


def _copy(m: Moment) -> Moment:
    from dataclasses import replace

    return replace(m)
