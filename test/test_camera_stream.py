"""The camera stream's timing (camera_stream) and the service request limits
(perception.RequestLimits), ROS-free: what perception_node asks of them."""
from vljepa_ros.camera_stream import REPEATED_STAMPS, CameraStamps, RateLimit
from vljepa_ros.change_detection import JUMP_BACK_RESET_S
from vljepa_ros.perception import RequestLimits


def test_zero_or_repeated_stamps_switch_to_arrival_time_once():
    stamps = CameraStamps()
    assert stamps.check(0.0) is None and not stamps.arrival  # one zero stamp: a simulation starting at t = 0
    warnings = [stamps.check(0.0) for _ in range(REPEATED_STAMPS - 1)]  # REPEATED_STAMPS zeros in a row
    assert stamps.arrival and warnings[-1] is not None and "zero" in warnings[-1]
    assert warnings[:-1] == [None] * (REPEATED_STAMPS - 2)
    assert stamps.check(5.0) is None and stamps.arrival  # for good, warned once


def test_repeated_stamps_are_named_and_rising_stamps_are_kept():
    rising = CameraStamps()
    for i in range(20):
        assert rising.check(1.0 + i / 30) is None
    assert not rising.arrival
    repeated = CameraStamps()
    warnings = [repeated.check(7.5) for _ in range(REPEATED_STAMPS + 1)]
    assert repeated.arrival and "repeated (7.500000000 s" in warnings[-1]


def test_rate_limit_takes_at_most_max_rate_hz_of_camera_time():
    rate = RateLimit(10.0)
    taken = []
    for i in range(30):  # 1 s of a 30 Hz camera
        stamp = i / 30
        take, restarted = rate.admit(stamp)
        assert not restarted
        if take:
            rate.processed(stamp)
            taken.append(i)
    assert taken == list(range(0, 30, 3))
    unlimited = RateLimit(0.0)
    assert all(unlimited.admit(i / 30)[0] for i in range(30))


def test_rate_limit_restarts_when_camera_time_jumps_back():
    rate = RateLimit(1.0)
    rate.processed(100.0)
    assert rate.admit(100.5) == (False, False)
    assert rate.admit(100.0 - 2 * JUMP_BACK_RESET_S) == (True, True)  # a bag replayed: taken at once
    rate.processed(50.0)
    rate.restart()
    assert rate.admit(50.1) == (True, False)


def test_request_limits_name_the_parameter_and_the_bad_field():
    limits = RequestLimits(max_texts=3, max_chars=10)
    assert limits.ask_problem("is it on?", ["yes", "no"]) is None
    assert limits.ask_problem("  ", ["yes"]) == "question is empty"
    assert "at least one candidate" in limits.ask_problem("q", [])
    assert "none may be empty" in limits.ask_problem("q", ["yes", " "])
    assert "at most ask_max_candidates=3" in limits.ask_problem("q", ["a", "b", "c", "d"])
    assert "at most max_text_chars=10" in limits.ask_problem("q" * 11, ["a"])
    assert limits.outcome_problem("push", []) is None  # no candidates: the state bank
    assert limits.outcome_problem("", []) == "action is empty"
    assert "non-empty" in limits.outcome_problem("push", [""])
    assert "max_text_chars=10" in limits.outcome_problem("push", ["x" * 11])
