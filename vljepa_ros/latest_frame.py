"""A worker thread that always processes the newest frame: a mailbox of one.

A camera callback must return at once, and inference that falls behind must
skip frames, never queue them (a queue only adds latency). ``put`` hands the
worker a frame; a frame still waiting when the next arrives is replaced and
counted as dropped. ROS-free: perception_node feeds it from its image
callback; tests drive it directly.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LatestFrameWorker:
    def __init__(self, process: Callable[[Any], None], on_error: Callable[[Exception], None],
                 name: str = "latest_frame"):
        self._process, self._on_error = process, on_error
        self._item: Any = None
        self._has_item = False
        self._running = True
        self._busy = False  # a frame is being processed
        self._cv = threading.Condition()
        self.dropped = 0  # frames replaced before the worker took them
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: Any) -> bool:
        """Give the worker ``item``; True if it replaced one still waiting (dropped)."""
        with self._cv:
            replaced = self._has_item
            self.dropped += replaced
            self._item, self._has_item = item, True
            self._cv.notify()
        return replaced

    def discard(self, timeout: float = 5.0) -> bool:
        """Forget a waiting frame (not counted: nobody replaced it) and wait for
        the one being processed; True once idle (a node being deactivated)."""
        with self._cv:
            self._item, self._has_item = None, False
            return self._cv.wait_for(lambda: not self._busy, timeout=timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the frame being processed (a waiting one is discarded)."""
        with self._cv:
            self._running = False
            self._cv.notify_all()
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._running and not self._has_item:
                    self._cv.wait(timeout=0.5)
                if not self._running:
                    return
                item, self._item, self._has_item = self._item, None, False
                self._busy = True
            try:
                self._process(item)
            except Exception as e:  # noqa: BLE001 - a bad frame must never stop the worker
                self._on_error(e)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()
