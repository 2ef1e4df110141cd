"""Stream health without ROS: frames lost before a node counted from stamp
gaps, rates from counters, and the levels of the nodes' /diagnostics."""

from vljepa_ros.health import ERROR, OK, WARN, Health, LostFrames, embedding_status, image_status, recent_latency

PERIOD = 1 / 15


def test_lost_frames_are_the_stamp_gaps_in_camera_periods():
    lost = LostFrames()
    stamps = [k * PERIOD for k in range(10)] + [k * PERIOD for k in range(13, 20)]  # 10, 11, 12 never arrive
    missing = [lost.add(s) for s in stamps]
    assert sum(missing) == 3 and missing[10] == 3 and lost.lost == 3
    assert abs(lost.period_s - PERIOD) < 1e-9


def test_a_paused_stream_or_a_jump_back_restarts_the_estimate_instead_of_counting():
    lost = LostFrames(max_gap_s=5.0)
    for k in range(10):
        lost.add(k * PERIOD)
    assert lost.add(60.0) == 0  # a bag paused for a minute: not 800 lost frames
    assert lost.add(1.0) == 0 and lost.period_s is None  # time went back: a new stream
    assert lost.lost == 0


def test_rates_are_per_second_between_two_publications():
    h = Health()
    h.rates({"received": 0, "lost": 0}, now=10.0)
    assert h.rates({"received": 30, "lost": 6}, now=12.0) == {"received": 15.0, "lost": 3.0}
    h.note_input(now=20.0)
    assert h.silence_s(now=23.5) == 3.5


def test_image_status_levels():
    quiet = {"received": 15.0, "lost": 0.0, "processed": 15.0, "malformed": 0.0, "invalid": 0.0}
    assert image_status(quiet, 100, 0.1, 5.0, 15.0, 30.0, 200.0) == (OK, "OK")
    lossy = dict(quiet, received=10.0, lost=5.0)  # a third of the camera's frames never arrive
    level, message = image_status(lossy, 100, 0.1, 5.0, 15.0, 30.0, 200.0)
    assert level == WARN and "received 10.0 of the camera's 15.0 frames/s" in message
    level, message = image_status(dict(quiet, processed=0.0, malformed=15.0), 100, 0.1, 5.0, 15.0, 30.0, 200.0)
    assert level == ERROR and "malformed" in message
    level, message = image_status(dict(quiet, invalid=1.0), 100, 0.1, 5.0, 15.0, 250.0, 200.0)
    assert level == ERROR and "NaN" in message and "latency p95 250 ms" in message  # the worst level, every message
    assert image_status(quiet, 0, 9.0, 5.0, 0.0, 0.0, 200.0) == (WARN, "no image received yet (9 s)")


def test_embedding_status_levels():
    assert embedding_status({"embeddings_seen": 15.0, "rejected": 0.0}, 100, 0.1, 5.0) == (OK, "OK")
    level, message = embedding_status({"embeddings_seen": 15.0, "rejected": 15.0}, 100, 0.1, 5.0)
    assert level == ERROR and "rejected" in message
    assert embedding_status({"embeddings_seen": 0.0, "rejected": 0.0}, 7, 6.0, 5.0)[0] == WARN


def test_recent_latency_percentiles():
    assert recent_latency([], 10) == (0.0, 0.0)
    assert recent_latency(list(range(1000)), 100) == (950, 995)  # the last 100 only
