"""The camera stream's timing, ROS-free: which frames perception takes, and
when a camera's own stamps cannot be used.

perception_node asks these on every image; tests drive them directly.
"""

from __future__ import annotations

from .change_detection import jumped_back

REPEATED_STAMPS = 3  # zero or equal stamps in a row that mean a camera without usable stamps


class CameraStamps:
    """A camera with zero or repeated stamps got one embedding and then
    nothing (every later frame was 'not newer'). After ``repeats`` zero or
    unchanged stamps in a row (one zero stamp can be a simulation starting
    at t = 0), ``arrival`` turns True for good: the caller stamps every frame
    with its arrival time."""

    def __init__(self, repeats: int = REPEATED_STAMPS):
        self.repeats = repeats
        self.arrival = False
        self._last: float | None = None
        self._run = 0

    def check(self, stamp_s: float) -> str | None:
        """Note one frame's camera stamp; the warning to log, once, when the
        stamps are found unusable (None otherwise)."""
        if self.arrival:
            return None
        self._run = self._run + 1 if stamp_s == 0.0 or stamp_s == self._last else 0
        self._last = stamp_s
        if self._run < self.repeats:
            return None
        self.arrival = True
        what = "zero" if stamp_s == 0.0 else f"repeated ({stamp_s:.9f} s, {self._run + 1} times)"
        return (f"camera stamps are {what}: stamping every frame with its arrival time (this node's clock) "
                "from now on; fix the camera driver's stamps to get capture times")


class RateLimit:
    """At most ``max_rate_hz`` processed frames per second of camera time
    (0 = no limit). Camera time that jumps back (a bag replayed) restarts it."""

    def __init__(self, max_rate_hz: float = 0.0):
        self.max_rate_hz = max_rate_hz
        self.last_s: float | None = None  # stamp of the last frame processed

    def restart(self) -> None:
        self.last_s = None

    def admit(self, stamp_s: float) -> tuple[bool, bool]:
        """(take this frame, camera time jumped back: the stream restarted)."""
        restarted = jumped_back(stamp_s, self.last_s)
        if restarted:
            self.last_s = None
        # 1 us of slack: a 30 Hz camera limited to 10 Hz takes every 3rd frame, though a difference of two
        # float stamps can fall 1e-17 s short of the period
        take = self.max_rate_hz <= 0 or self.last_s is None or \
            stamp_s - self.last_s >= 1.0 / self.max_rate_hz - 1e-6
        return take, restarted

    def processed(self, stamp_s: float) -> None:
        """The frame at ``stamp_s`` was processed: the next is measured from it."""
        self.last_s = stamp_s
