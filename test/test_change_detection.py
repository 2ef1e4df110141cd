"""vljepa_ros.change_detection on synthetic embedding streams (no model, no ROS).

The streams imitate what the perception node publishes at 15 Hz: K states,
each a fixed unit vector plus Gaussian noise, with ~1 s of transition motion
between them (the embedding travels from the old state to the new one while
wandering off to the side, like an arm pushing an object through the view).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest

from vljepa_ros.change_detection import (
    ChangeDetector,
    ChangeDetectorConfig,
    decode_quality,
    decode_similarity,
    event_precision_recall,
    match_events,
    online_decode_times,
    uniform_decode_times,
    ward_decode_times,
    ward_segments,
)

FPS = 15.0
DIM = 64


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def noise_sigma(distance: float, dim: int = DIM) -> float:
    """Per-dimension sigma whose noisy unit vector sits ~`distance` (1 - cos) from the clean one."""
    return math.sqrt(2.0 * distance / dim)


@dataclass
class Stream:
    stamps: np.ndarray  # (N,)
    embeddings: np.ndarray  # (N, D) float32, unit rows
    truth: np.ndarray  # (N,) state id per frame (switches at the transition midpoint)
    transitions_s: np.ndarray  # (K-1,) midpoint of each transition's motion
    transition_spans_s: list[tuple[float, float]]
    states: np.ndarray  # (K, D)


def make_stream(
    seed: int,
    k_states: int = 5,
    noise_distance: float = 0.015,
    state_distance: tuple[float, float] = (0.15, 0.35),
    wander: float = 0.6,
    transition_s: float = 1.0,
    static_s: tuple[float, float] = (4.0, 8.0),
    t0: float = 1000.0,
) -> Stream:
    rng = np.random.default_rng(seed)
    states = [unit(rng.normal(size=DIM))]
    for _ in range(k_states - 1):
        # Next state at a chosen cosine distance from the previous one.
        angle = math.acos(1.0 - rng.uniform(*state_distance))
        r = rng.normal(size=DIM)
        r = unit(r - (r @ states[-1]) * states[-1])
        states.append(math.cos(angle) * states[-1] + math.sin(angle) * r)
    sigma = noise_sigma(noise_distance)
    t, stamps, embs, truth, mids, spans = t0, [], [], [], [], []
    for k in range(k_states):
        if k > 0:
            a, b = states[k - 1], states[k]
            n = int(round(transition_s * FPS))
            mids.append(t + transition_s / 2)
            spans.append((t, t + transition_s))
            u1, u2 = unit(rng.normal(size=DIM)), unit(rng.normal(size=DIM))
            phase = rng.uniform(0, 2 * math.pi)
            for i in range(n):
                p = (i + 0.5) / n
                s = p * p * (3 - 2 * p)
                # Travel a -> b, wandering sideways most in the middle of the motion.
                side = wander * math.sin(math.pi * p) * (math.cos(phase + 7 * p) * u1 + math.sin(phase + 7 * p) * u2)
                e = unit((1 - s) * a + s * b + side) + rng.normal(scale=sigma, size=DIM)
                stamps.append(t), embs.append(unit(e)), truth.append(k if p > 0.5 else k - 1)
                t += 1 / FPS
        for _ in range(int(round(rng.uniform(*static_s) * FPS))):
            stamps.append(t), embs.append(unit(states[k] + rng.normal(scale=sigma, size=DIM))), truth.append(k)
            t += 1 / FPS
    return Stream(
        np.array(stamps), np.array(embs, dtype=np.float32), np.array(truth), np.array(mids), spans, np.array(states)
    )


def static_stream(
    seed: int, seconds: float, noise_distance: float, t0: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    state = unit(rng.normal(size=DIM))
    n = int(seconds * FPS)
    emb = unit(state + rng.normal(scale=noise_sigma(noise_distance), size=(n, DIM))).astype(np.float32)
    return t0 + np.arange(n) / FPS, emb, state


def nearest_state(embedding: np.ndarray, states: np.ndarray) -> int:
    return int(np.argmax(states @ embedding))


# -- online: one trigger per true change --------------------------------------


@pytest.mark.parametrize("seed", range(12))
def test_one_trigger_per_true_change(seed: int) -> None:
    stream = make_stream(seed)
    out = online_decode_times(stream.stamps, stream.embeddings, ChangeDetectorConfig())
    kinds = [t.kind for _, t in out]
    assert kinds == ["initial"] + ["change"] * (len(stream.states) - 1), kinds
    changes = [t for _, t in out[1:]]
    for trig, mid, (begin, end) in zip(changes, stream.transitions_s, stream.transition_spans_s):
        assert abs(trig.state_start_s - mid) <= 0.5
        assert begin <= trig.state_start_s <= end  # the change began during the motion
        assert trig.stamp_s > end  # decoded after the motion settled, not mid-push
    # Every decode describes the state that holds when it fires.
    for frame, trig in out:
        assert nearest_state(trig.decode_embedding, stream.states) == stream.truth[frame]
        assert trig.decode_embedding.dtype == np.float32
        assert np.linalg.norm(trig.decode_embedding) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    "variant",
    [
        dict(noise_distance=0.4 * ChangeDetectorConfig().threshold),  # noisier model
        dict(noise_distance=0.03, state_distance=(0.12, 0.2)),  # closer states
        dict(wander=1.5),  # the arm fills the view mid-push
        dict(transition_s=2.0),  # slower push
    ],
    ids=["noisy", "close-states", "big-wander", "slow-push"],
)
def test_one_trigger_per_change_holds_across_conditions(variant: dict) -> None:
    for seed in range(4):
        stream = make_stream(100 + seed, **variant)
        out = online_decode_times(stream.stamps, stream.embeddings, ChangeDetectorConfig())
        starts = [t.state_start_s for _, t in out if t.kind == "change"]
        assert len(starts) == len(stream.transitions_s)
        assert all(b <= s <= e for s, (b, e) in zip(starts, stream.transition_spans_s))


def test_trigger_fields_chain_and_score() -> None:
    stream = make_stream(3)
    out = [t for _, t in online_decode_times(stream.stamps, stream.embeddings)]
    initial = out[0]
    assert initial.kind == "initial" and initial.previous_start_s is None and initial.change_score == 0.0
    assert initial.state_start_s == stream.stamps[0]
    for prev, cur, k in zip(out, out[1:], range(1, len(out))):
        assert cur.previous_start_s == prev.state_start_s
        true_distance = 1.0 - float(stream.states[k] @ stream.states[k - 1])
        assert cur.change_score == pytest.approx(true_distance, abs=0.03)


def test_initial_trigger_waits_for_settle_s() -> None:
    stamps, emb, _ = static_stream(0, 3.0, 0.01, t0=50.0)
    cfg = ChangeDetectorConfig(settle_s=0.5)
    out = online_decode_times(stamps, emb, cfg)
    assert len(out) == 1
    frame, trig = out[0]
    assert trig.stamp_s - stamps[0] >= 0.5 and stamps[frame - 1] - stamps[0] < 0.5


@pytest.mark.parametrize("noise_fraction", [0.2, 0.5, 0.7])
def test_no_trigger_in_static_noise(noise_fraction: float) -> None:
    # Raw frame noise up to 0.7 x the default threshold stays silent
    # (smoothing + dwell + hysteresis); false changes start near 0.9 x.
    noise_distance = noise_fraction * ChangeDetectorConfig().threshold
    for seed in range(3):
        stamps, emb, _ = static_stream(seed, 120.0, noise_distance)
        detector = ChangeDetector()
        kinds = [t.kind for s, e in zip(stamps, emb) if (t := detector.update(s, e)) is not None]
        assert kinds == ["initial"]
        assert detector.cancelled + detector.suppressed <= 2


def _with_excursion(seconds_away: float, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Static scene; for `seconds_away` the embedding jumps elsewhere, then comes back."""
    stamps, emb, _ = static_stream(seed, 12.0, 0.015)
    rng = np.random.default_rng(seed + 50)
    away = unit(rng.normal(size=DIM))
    start = int(5.0 * FPS)
    n = int(round(seconds_away * FPS))
    emb = emb.copy()
    emb[start : start + n] = unit(away + rng.normal(scale=noise_sigma(0.015), size=(n, DIM)))
    return stamps, emb


def test_short_glitch_is_cancelled_by_min_dwell() -> None:
    stamps, emb = _with_excursion(0.15)  # 2 frames, e.g. a bird through the view
    detector = ChangeDetector(ChangeDetectorConfig(min_dwell_s=0.3))
    kinds = [t.kind for s, e in zip(stamps, emb) if (t := detector.update(s, e)) is not None]
    assert kinds == ["initial"] and detector.cancelled == 1


def test_excursion_that_returns_to_the_old_state_is_suppressed() -> None:
    stamps, emb = _with_excursion(0.6)  # an arm reaches in and leaves without changing anything
    detector = ChangeDetector(ChangeDetectorConfig(min_dwell_s=0.3, settle_s=0.5))
    kinds = [t.kind for s, e in zip(stamps, emb) if (t := detector.update(s, e)) is not None]
    assert kinds == ["initial"] and detector.suppressed == 1


def test_continuous_motion_is_decoded_after_max_settle_s() -> None:
    # A camera panning forever: never settles, but the output must not go stale.
    rng = np.random.default_rng(0)
    a, b = unit(rng.normal(size=DIM)), unit(rng.normal(size=DIM))
    b = unit(b - (b @ a) * a)
    stamps = np.arange(int(20 * FPS)) / FPS
    emb = np.array([math.cos(2.0 * t) * a + math.sin(2.0 * t) * b for t in stamps], dtype=np.float32)  # 2 rad/s
    cfg = ChangeDetectorConfig(min_dwell_s=0.3, max_settle_s=2.0)
    detector = ChangeDetector(cfg)
    out = [t for s, e in zip(stamps, emb) if (t := detector.update(s, e)) is not None]
    assert detector.forced >= 2
    gaps = np.diff([t.stamp_s for t in out])
    assert gaps.max() <= cfg.max_settle_s + cfg.min_dwell_s + 1.0 + 1e-9


# -- heartbeat ----------------------------------------------------------------


def test_heartbeat_after_max_silence() -> None:
    stamps, emb, _ = static_stream(0, 10.0, 0.01)
    cfg = ChangeDetectorConfig(max_silence_s=3.0, settle_s=0.5)
    detector = ChangeDetector(cfg)
    out = [t for s, e in zip(stamps, emb) if (t := detector.update(s, e)) is not None]
    assert [t.kind for t in out] == ["initial", "heartbeat", "heartbeat", "heartbeat"]
    emitted = [t.stamp_s for t in out]
    for before, after in zip(emitted, emitted[1:]):
        # First frame at or after max_silence_s since the last decode.
        assert 3.0 <= after - before < 3.0 + 1 / FPS + 1e-9
    hb = out[1]
    assert hb.state_start_s == out[0].state_start_s == hb.previous_start_s
    assert float(hb.decode_embedding @ out[0].decode_embedding) > 0.99


def test_heartbeat_clock_restarts_after_a_change_and_is_off_by_default() -> None:
    stream = make_stream(5, static_s=(5.0, 5.5))
    kinds = [t.kind for _, t in online_decode_times(stream.stamps, stream.embeddings)]
    assert "heartbeat" not in kinds
    out = online_decode_times(stream.stamps, stream.embeddings, ChangeDetectorConfig(max_silence_s=4.0))
    assert [t.kind for _, t in out if t.kind != "heartbeat"] == kinds  # heartbeats add, never replace
    last_emit = None
    for _, t in out:
        if t.kind == "heartbeat":
            assert t.stamp_s - last_emit >= 4.0
        last_emit = t.stamp_s


# -- robustness ---------------------------------------------------------------


def test_out_of_order_and_duplicate_stamps_are_ignored_and_counted() -> None:
    stream = make_stream(7)
    clean = online_decode_times(stream.stamps, stream.embeddings)
    detector = ChangeDetector()
    got, injected = [], 0
    rng = np.random.default_rng(0)
    for i, (s, e) in enumerate(zip(stream.stamps, stream.embeddings)):
        if (t := detector.update(s, e)) is not None:
            got.append((i, t))
        if i % 17 == 5:  # a duplicate, and a late frame from the past carrying garbage
            detector.update(s, e)
            detector.update(s - 0.5, unit(rng.normal(size=DIM)))
            injected += 2
    assert detector.stale == injected
    assert detector.seen == len(stream.stamps)
    assert [(i, t.kind, t.state_start_s) for i, t in got] == [(i, t.kind, t.state_start_s) for i, t in clean]
    assert "not newer" in detector.last_rejection


def test_invalid_embeddings_are_rejected_and_counted() -> None:
    stream = make_stream(8)
    clean = online_decode_times(stream.stamps, stream.embeddings)
    detector = ChangeDetector()
    got, bad = [], 0
    nan = np.full(DIM, np.nan, dtype=np.float32)
    for i, (s, e) in enumerate(zip(stream.stamps, stream.embeddings)):
        if i % 23 == 3:
            # NaN, inf, zero and wrong-size embeddings between real frames (stamps slightly earlier,
            # so the real frame is still newer).
            for junk in (nan, np.full(DIM, np.inf), np.zeros(DIM), np.ones(DIM + 1)):
                assert detector.update(s - 0.01, junk) is None
                bad += 1
        if (t := detector.update(s, e)) is not None:
            got.append((i, t))
    assert detector.invalid == bad and detector.stale == 0
    assert [(i, t.kind) for i, t in got] == [(i, t.kind) for i, t in clean]
    assert detector.counters()["invalid"] == bad


def test_reset_forgets_the_stream() -> None:
    stamps, emb, _ = static_stream(0, 3.0, 0.01, t0=100.0)
    detector = ChangeDetector()
    for s, e in zip(stamps, emb):
        detector.update(s, e)
    assert detector.triggers == 1 and detector.reference is not None
    detector.reset()
    assert detector.counters() == dict.fromkeys(detector.counters(), 0) and detector.reference is None
    # Older stamps are welcome again after a reset (e.g. a bag restarted).
    out = [t for s, e in zip(stamps - 50.0, emb) if (t := detector.update(s, e)) is not None]
    assert [t.kind for t in out] == ["initial"]


def test_plain_threshold_detector_when_everything_is_off() -> None:
    # smoothing 1, no dwell, no settling: fires on the first frame past the threshold.
    rng = np.random.default_rng(0)
    a, b = unit(rng.normal(size=DIM)), unit(rng.normal(size=DIM))
    emb = np.array([a] * 10 + [b] * 10, dtype=np.float32)
    cfg = ChangeDetectorConfig(smoothing=1.0, threshold=0.1, hysteresis=0.0, min_dwell_s=0.0, settle_s=0.0)
    out = online_decode_times(np.arange(20) / FPS, emb, cfg)
    assert [(i, t.kind) for i, t in out] == [(0, "initial"), (10, "change")]
    assert out[1][1].state_start_s == pytest.approx(10 / FPS)
    np.testing.assert_allclose(out[1][1].decode_embedding, b, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, reason",
    [
        (dict(smoothing=0.0), "smoothing"),
        (dict(smoothing=1.5), "smoothing"),
        (dict(threshold=0.0), "threshold"),
        (dict(threshold=2.0), "threshold"),
        (dict(threshold=float("nan")), "finite"),
        (dict(hysteresis=-0.01), "hysteresis"),
        (dict(threshold=0.1, hysteresis=0.1), "hysteresis"),
        (dict(min_dwell_s=-1.0), "min_dwell_s"),
        (dict(settle_s=-0.1), "settle_s"),
        (dict(max_silence_s=-5.0), "max_silence_s"),
        (dict(max_silence_s=float("inf")), "finite"),
        (dict(settle_fraction=0.0), "settle_fraction"),
        (dict(settle_s=2.0, max_settle_s=1.0), "max_settle_s"),
    ],
)
def test_config_validation(kwargs: dict, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        ChangeDetectorConfig(**kwargs)


# -- offline policies ---------------------------------------------------------


def test_uniform_decode_times() -> None:
    assert uniform_decode_times(10, 3) == [0, 3, 6, 9]
    assert uniform_decode_times(9, 3) == [0, 3, 6]
    assert uniform_decode_times(0, 5) == []
    assert uniform_decode_times(4, 1) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="stride"):
        uniform_decode_times(10, 0)


def test_online_decode_times_indexes_frames() -> None:
    stream = make_stream(2)
    for frame, trig in online_decode_times(stream.stamps, stream.embeddings):
        assert stream.stamps[frame] == trig.stamp_s
    with pytest.raises(ValueError, match="embeddings must be"):
        online_decode_times(stream.stamps[:-1], stream.embeddings)


def test_ward_segments_recovers_known_boundaries() -> None:
    rng = np.random.default_rng(0)
    lengths = [40, 75, 20, 130, 60, 55]
    centres = unit(rng.normal(size=(len(lengths), DIM)))
    emb = np.concatenate(
        [unit(c + rng.normal(scale=noise_sigma(0.03), size=(n, DIM))) for c, n in zip(centres, lengths)]
    )
    bounds = np.cumsum([0] + lengths)
    assert ward_segments(emb, len(lengths)) == list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def test_ward_segments_on_a_stream_with_transitions() -> None:
    stream = make_stream(4, k_states=6)
    segments = ward_segments(stream.embeddings, 6)
    assert segments[0][0] == 0 and segments[-1][1] == len(stream.stamps)
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))  # contiguous, in order
    boundaries_s = stream.stamps[[start for start, _ in segments[1:]]]
    assert np.all(np.abs(boundaries_s - stream.transitions_s) <= 0.5)


def test_ward_segments_edge_cases() -> None:
    emb = unit(np.random.default_rng(0).normal(size=(5, DIM)))
    assert ward_segments(emb, 1) == [(0, 5)]
    assert ward_segments(emb, 5) == [(i, i + 1) for i in range(5)]
    assert ward_segments(emb, 50) == [(i, i + 1) for i in range(5)]
    assert ward_segments(np.zeros((0, DIM)), 3) == []
    with pytest.raises(ValueError, match="n_segments"):
        ward_segments(emb, 0)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        ward_segments(emb[0], 2)


def test_ward_segments_scales_to_long_streams() -> None:
    # 20k frames must stay well inside a benchmark's budget (O(N log N)).
    emb = np.random.default_rng(0).normal(size=(20000, 32)).astype(np.float32)
    segments = ward_segments(emb, 100)
    assert len(segments) == 100 and segments[-1][1] == 20000


def test_ward_decode_times_midpoint_and_mean() -> None:
    a, b = np.eye(DIM)[0], np.eye(DIM)[1]
    emb = np.array([a] * 4 + [b] * 6, dtype=np.float32)
    out = ward_decode_times(emb, 2)
    assert [f for f, _ in out] == [1, 6]  # midpoints of [0, 4) and [4, 10)
    np.testing.assert_allclose(out[0][1], a)
    np.testing.assert_allclose(out[1][1], b)
    assert [f for f, _ in ward_decode_times(emb, 2, at="start")] == [0, 4]
    with pytest.raises(ValueError, match="at must be"):
        ward_decode_times(emb, 2, at="end")


# -- metrics ------------------------------------------------------------------


def test_decode_quality_hand_cases() -> None:
    truth = ["a", "a", "a", "b", "b", "b", "c", "c"]
    # Decodes at 0 ("a"), 4 ("b"), 6 ("c"): frame 3 still shows "a" (wrong).
    assert decode_quality(truth, [0, 4, 6], ["a", "b", "c"]) == pytest.approx(7 / 8)
    # Nothing before the first decode counts: frames 0-1 score 0.
    assert decode_quality(truth, [2, 3, 6], ["a", "b", "c"]) == pytest.approx(6 / 8)
    assert decode_quality(truth, [], []) == 0.0
    # Order of the lists does not matter; at one frame the last listed wins.
    assert decode_quality(truth, [6, 0, 3], ["c", "a", "b"]) == 1.0
    assert decode_quality(truth, [0, 0], ["b", "a"]) == pytest.approx(3 / 8)
    # A decode after the last frame changes nothing.
    assert decode_quality([1, 2], [0, 5], [1, 2]) == 0.5
    with pytest.raises(ValueError, match="decoded ids"):
        decode_quality(truth, [0, 1], ["a"])
    with pytest.raises(ValueError, match=">= 0"):
        decode_quality(truth, [-1], ["a"])


def test_decode_similarity_hand_case() -> None:
    e = np.eye(3)
    truth = np.array([e[0], e[0], e[1], e[1]])
    # Frame 0: no output (0); frames 1-2 show e0 (1, then 0); frame 3 shows e1 (1).
    assert decode_similarity(truth, [1, 3], np.array([e[0], e[1]])) == pytest.approx(2 / 4)
    assert decode_similarity(truth, [], np.zeros((0, 3))) == 0.0


def test_event_precision_recall_hand_cases() -> None:
    truths = [10.0, 20.0, 30.0]
    assert event_precision_recall([10.2, 19.6, 30.5], truths) == (1.0, 1.0)
    # Two events near one transition: one hit, one false alarm (one-to-one).
    assert event_precision_recall([10.1, 10.3], truths) == (0.5, pytest.approx(1 / 3))
    # Outside the tolerance: a false alarm and a miss.
    assert event_precision_recall([10.6], [10.0]) == (0.0, 0.0)
    assert event_precision_recall([10.6], [10.0], tolerance_s=1.0) == (1.0, 1.0)
    # Greedy must not steal: the event at 1.4 serves 1.8 because 0.9 took 1.0.
    assert event_precision_recall([0.9, 1.4], [1.0, 1.8]) == (1.0, 1.0)
    assert event_precision_recall([1.4, 0.9], [1.8, 1.0]) == (1.0, 1.0)  # unsorted input
    assert event_precision_recall([], truths) == (1.0, 0.0)
    assert event_precision_recall([5.0], []) == (0.0, 1.0)
    with pytest.raises(ValueError, match="tolerance"):
        event_precision_recall([1.0], [1.0], tolerance_s=-1.0)


def test_selective_beats_uniform_at_equal_decode_count() -> None:
    # The benchmark's claim in miniature: with as many decodes as the online
    # policy used, uniform decoding is wrong for longer after each change.
    stream = make_stream(11, k_states=6)
    selective = online_decode_times(stream.stamps, stream.embeddings)
    frames = [f for f, _ in selective]
    ids = [nearest_state(t.decode_embedding, stream.states) for _, t in selective]
    q_selective = decode_quality(stream.truth.tolist(), frames, ids)
    stride = len(stream.stamps) // len(frames)
    uniform = uniform_decode_times(len(stream.stamps), stride)
    q_uniform = decode_quality(
        stream.truth.tolist(), uniform, [nearest_state(stream.embeddings[f], stream.states) for f in uniform]
    )
    # Each decode waits for the motion to settle (~1 s after the truth
    # switches), which is most of the 10-15 % the online policy loses here.
    assert q_selective > 0.85 and q_selective > q_uniform
    precision, recall = event_precision_recall(
        [t.state_start_s for _, t in selective if t.kind == "change"], stream.transitions_s
    )
    assert (precision, recall) == (1.0, 1.0)


def test_match_events_pairs_one_to_one_in_input_order() -> None:
    # unsorted input: the pairs index the given sequences
    assert match_events([19.6, 10.2, 10.3], [30.0, 10.0, 20.0]) == [(1, 1), (0, 2)]
    assert match_events([10.6], [10.0]) == []
    assert match_events([10.6], [10.0], tolerance_s=1.0) == [(0, 0)]
    # maximal: nearest-first would pair 1.4 with 1.6 and leave 1.9 without a transition
    assert match_events([1.4, 1.9], [1.0, 1.6]) == [(0, 0), (1, 1)]
    with pytest.raises(ValueError, match="tolerance_s"):
        match_events([1.0], [1.0], tolerance_s=-0.1)
