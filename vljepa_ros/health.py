"""The health of a stream, ROS-free: rates from counters, frames lost before
a node (stamp gaps), and the level and message of a node's /diagnostics
status (the nodes only publish what these compute).

Levels are diagnostic_msgs/DiagnosticStatus's: OK 0, WARN 1, ERROR 2.
"""

from __future__ import annotations

import time
from collections import deque

import numpy as np

OK, WARN, ERROR = 0, 1, 2
LOST_WARN_FRACTION = 0.2  # WARN when more of the camera's frames than this never reach the node


class RateMeter:
    """Achieved rate of a periodic action (publishing, processing) over its
    last ``window`` ticks, and over the whole run."""

    def __init__(self):
        self._ticks: deque[float] = deque()
        self._first: float | None = None

    def tick(self, now: float, window: int) -> float | None:
        """Record one tick at ``now`` (monotonic s); the rate over the last ``window`` ticks (None: too few)."""
        self._first = now if self._first is None else self._first
        self._ticks.append(now)
        while len(self._ticks) > max(2, window):
            self._ticks.popleft()
        span = self._ticks[-1] - self._ticks[0]
        return None if len(self._ticks) < 2 else ((len(self._ticks) - 1) / span if span > 0 else float("inf"))

    def overall(self, count: int) -> float:
        """Rate of ``count`` ticks from the first tick to the last (NaN before two)."""
        if self._first is None or not self._ticks or self._ticks[-1] <= self._first:
            return float("nan")
        return (count - 1) / (self._ticks[-1] - self._first)

    def clear(self) -> None:
        """Forget the window (after a rate change), keep the run's start."""
        self._ticks.clear()

    def __len__(self) -> int:
        return len(self._ticks)


class LostFrames:
    """Frames the camera sent that never reached the node, counted from stamp
    gaps. A keep-last-1 best-effort subscription drops frames silently (large
    images lost in transport, frames overwritten while the executor thread
    answers a long service call): a gap of k camera periods between two
    received frames means k - 1 frames lost. The period is the median of the
    recent gaps; a gap over ``max_gap_s`` (a paused bag) or a jump back
    restarts the estimate instead of counting."""

    def __init__(self, window: int = 31, max_gap_s: float = 5.0):
        self._gaps: deque[float] = deque(maxlen=window)
        self._last: float | None = None
        self.max_gap_s = max_gap_s
        self.lost = 0

    def restart(self) -> None:
        """A new stream (the node re-activated): forget the gaps, keep the count."""
        self._gaps.clear()
        self._last = None

    @property
    def period_s(self) -> float | None:
        return float(np.median(self._gaps)) if len(self._gaps) >= 5 else None

    def add(self, stamp_s: float) -> int:
        """Note a received frame's stamp; returns the frames lost just before it."""
        last, self._last = self._last, stamp_s
        if last is None or stamp_s <= last or stamp_s - last > self.max_gap_s:
            if last is not None and (stamp_s < last or stamp_s - last > self.max_gap_s):
                self._gaps.clear()  # a new stream; repeated stamps are the stale counter's business
            return 0
        gap, period = stamp_s - last, self.period_s
        self._gaps.append(gap)
        missing = int(round(gap / period)) - 1 if period and gap > 1.5 * period else 0
        self.lost += missing
        return missing


class Health:
    """Counters -> rates over the last publication interval, and the level and
    message of a diagnostic status (pure: the nodes only publish it)."""

    def __init__(self):
        self._last: tuple[float, dict] | None = None
        self._last_input: float | None = None
        self.started = time.monotonic()

    def rates(self, counters: dict, now: float | None = None) -> dict:
        now = time.monotonic() if now is None else now
        last, self._last = self._last, (now, dict(counters))
        if last is None or now <= last[0]:
            return dict.fromkeys(counters, 0.0)
        return {k: (counters[k] - last[1].get(k, 0)) / (now - last[0]) for k in counters}

    def note_input(self, now: float | None = None) -> None:
        self._last_input = time.monotonic() if now is None else now

    def silence_s(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return now - (self._last_input if self._last_input is not None else self.started)


def level_and_message(problems: list[tuple[int, str]]) -> tuple[int, str]:
    """The worst problem's level and all messages; OK if there is none."""
    if not problems:
        return 0, "OK"
    return max(level for level, _ in problems), "; ".join(m for _, m in problems)


def recent_latency(latencies_ms, n: int) -> tuple[float, float]:
    """p50 and p95 of the last ``n`` latencies (0, 0 without any)."""
    recent = sorted(list(latencies_ms)[-n:]) if n > 0 else []
    if not recent:
        return 0.0, 0.0
    return recent[len(recent) // 2], recent[min(len(recent) - 1, int(0.95 * len(recent)))]


def image_status(rates: dict, received: int, silence_s: float, stale_after_s: float, camera_hz: float,
                 latency_p95_ms: float, latency_budget_ms: float) -> tuple[int, str]:
    """perception_node's level and message from the last second's rates
    (received, lost, processed, malformed, invalid per second)."""
    problems = []
    if silence_s > stale_after_s:
        problems.append((WARN, f"no image for {silence_s:.0f} s" if received else
                         f"no image received yet ({silence_s:.0f} s)"))
    elif camera_hz and rates["received"] + rates["lost"] > 0 and \
            rates["lost"] > LOST_WARN_FRACTION * (rates["received"] + rates["lost"]):
        problems.append((WARN, f"received {rates['received']:.1f} of the camera's {camera_hz:.1f} frames/s "
                               "(frames lost before the node: transport? config/fastdds_large_images.xml)"))
    if rates["malformed"] > 0 and rates["processed"] == 0:
        problems.append((ERROR, "every image of the last second was malformed (see the node's log)"))
    if rates["invalid"] > 0:
        problems.append((ERROR, "the model's output is NaN or inf: nothing published (weights? see the log)"))
    if latency_p95_ms > latency_budget_ms:
        problems.append((WARN, f"latency p95 {latency_p95_ms:.0f} ms over latency_budget_ms={latency_budget_ms:g}"))
    return level_and_message(problems)


def embedding_status(rates: dict, seen: int, silence_s: float, stale_after_s: float) -> tuple[int, str]:
    """decoder_node's level and message from the last second's rates
    (embeddings_seen and rejected per second)."""
    problems = []
    if silence_s > stale_after_s:
        problems.append((WARN, f"no embedding for {silence_s:.0f} s" if seen else
                         f"no embedding received yet ({silence_s:.0f} s)"))
    if rates["rejected"] > 0 and rates["embeddings_seen"] == rates["rejected"]:
        problems.append((ERROR, "every embedding of the last second was rejected (another model? see the node's log)"))
    return level_and_message(problems)
