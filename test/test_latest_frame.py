"""LatestFrameWorker (the frame mailbox perception_node feeds) and the one
jump-back rule, without ROS."""

import threading
import time

from vljepa_ros.change_detection import JUMP_BACK_RESET_S, jumped_back
from vljepa_ros.latest_frame import LatestFrameWorker


def test_a_busy_worker_processes_the_newest_frame_and_counts_the_replaced():
    started, release, done = threading.Event(), threading.Event(), []

    def process(item):
        if item == 0:
            started.set()
            release.wait(5)  # inference busy with frame 0
        done.append(item)

    w = LatestFrameWorker(process, on_error=lambda e: None)
    try:
        assert w.put(0) is False
        assert started.wait(5)
        assert [w.put(i) for i in (1, 2, 3)] == [False, True, True]  # 1 and 2 replaced while 0 runs
        release.set()
        deadline = time.monotonic() + 5
        while done != [0, 3] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done == [0, 3] and w.dropped == 2
    finally:
        w.close()


def test_an_error_is_reported_and_the_worker_goes_on():
    errors, done = [], []

    def process(item):
        if item == "bad":
            raise ValueError("malformed")
        done.append(item)

    w = LatestFrameWorker(process, on_error=errors.append)
    try:
        w.put("bad")
        deadline = time.monotonic() + 5
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        w.put("good")
        while not done and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [str(e) for e in errors] == ["malformed"] and done == ["good"]
    finally:
        w.close()
    assert not w._thread.is_alive()


def test_discard_forgets_the_waiting_frame_and_waits_for_the_running_one():
    started, release, done = threading.Event(), threading.Event(), []

    def process(item):
        if item == 0:
            started.set()
            release.wait(5)
        done.append(item)

    w = LatestFrameWorker(process, on_error=lambda e: None)
    try:
        w.put(0)
        assert started.wait(5)
        w.put(1)  # waiting while 0 runs
        assert w.discard(timeout=0.2) is False  # 0 still running: not idle yet
        release.set()
        assert w.discard(timeout=5) is True
        time.sleep(0.2)
        assert done == [0] and w.dropped == 0  # 1 was forgotten, not processed, not counted as dropped
        w.put(2)  # the worker still runs after a discard
        deadline = time.monotonic() + 5
        while done != [0, 2] and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done == [0, 2]
    finally:
        w.close()


def test_jump_back_rule():
    assert not jumped_back(5.0, None)
    assert not jumped_back(5.0 - JUMP_BACK_RESET_S / 2, 5.0)  # a late frame: stale, not a restart
    assert jumped_back(5.0 - 2 * JUMP_BACK_RESET_S, 5.0)
