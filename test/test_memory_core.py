"""The semantic memory core without ROS: moments from the change detector,
poses by stamp, the LanceDB store (restart, kill -9, other models, old
schema, read-only and full disks) and the queries' answers to bad input."""
import errno
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vljepa_ros.memory import NS, MemoryConfig, MomentSegmenter, MomentStore, Pose, PoseBuffer, SemanticMemory
from vljepa_ros.memory.store import StoreError

D = 256
FPS = 15.0
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def unit_rows(n, seed=0):
    v = np.random.default_rng(seed).standard_normal((n, D)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


STATES = unit_rows(4)


def encode(texts):
    """A stand-in Y-encoder: 'state k' -> STATES[k]."""
    return STATES[[int(t.split()[-1]) for t in texts]]


def play(memory, segments, t0_s=100.0, noise=0.005, seed=1, states=None):
    """segments: [(state, seconds)] played at FPS; returns the true start stamps (ns)."""
    states = STATES if states is None else states
    rng = np.random.default_rng(seed)
    t, starts = t0_s, []
    for state, seconds in segments:
        starts.append(int(round(t * NS)))
        for _ in range(int(seconds * FPS)):
            e = states[state] + noise * rng.standard_normal(D).astype(np.float32)
            memory.add_embedding(int(round(t * NS)), e / np.linalg.norm(e), "cam")
            t += 1.0 / FPS
    return starts


def moving_pose(stamp_ns):
    """The camera drives along x at 1 m/s and turns about z at 0.1 rad/s."""
    s = stamp_ns / NS
    yaw = 0.1 * s
    return Pose("map", (s, 0.0, 1.0), (0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)))


@pytest.fixture
def memory(tmp_path):
    store = MomentStore(str(tmp_path / "mem"), D)
    return SemanticMemory(store, "m@aaaaaaaaaaaa", encode, MemoryConfig(), pose_lookup=lambda s, f: moving_pose(s))


def test_moments_follow_the_change_detector():
    seg = MomentSegmenter("m")
    rng = np.random.default_rng(0)
    out = []
    for i, state in enumerate([0] * 60 + [1] * 60 + [2] * 60):
        e = STATES[state] + 0.005 * rng.standard_normal(D).astype(np.float32)
        out += seg.update(int((100 + i / FPS) * NS), e / np.linalg.norm(e), "cam")
    out += seg.close()
    assert [round(m.start_s, 3) for m in out] == [100.0, 104.0, 108.0]
    for m, state in zip(out, range(3)):
        assert float(m.embedding @ STATES[state]) > 0.99
        assert m.end_ns < m.start_ns + 4 * NS and m.n_frames > 40  # the stable frames, not the change
    assert seg.current is None


def test_pose_buffer_interpolates_and_refuses_stale_stamps():
    buf = PoseBuffer(tolerance_ns=NS // 10)
    buf.add(10 * NS, Pose("map", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0)))
    buf.add(11 * NS, Pose("map", (2.0, 0.0, 0.0), (0.0, 0.0, np.sin(np.pi / 4), np.cos(np.pi / 4))))  # yaw 90 deg
    mid = buf.pose_at(10 * NS + NS // 2)
    assert mid.position == pytest.approx((1.0, 0.0, 0.0))
    assert mid.orientation == pytest.approx((0.0, 0.0, np.sin(np.pi / 8), np.cos(np.pi / 8)))  # yaw 45 deg
    assert buf.pose_at(11 * NS + NS // 20) is not None     # within the tolerance
    assert buf.pose_at(12 * NS) is None                    # a pose from the wrong time is worse than none
    assert not buf.add(10 * NS + 1, Pose("map", (0, 0, 0), (0, 0, 0, 1)))  # out of order
    assert not buf.add(12 * NS, Pose("map", (float("nan"), 0, 0), (0, 0, 0, 1)))


def test_query_latest_pose_and_event_text(memory):
    starts = play(memory, [(0, 4), (1, 4), (2, 4), (0, 4), (3, 4)])
    assert memory.attach_event(starts[1] + NS // 100, "the lamp is off", "turn the lamp off", 0.9)
    r = memory.query("state 0", 2)
    assert r.success and sorted(m.start_ns for m in r.hits) == [starts[0], starts[3]]
    top = memory.query("state 1", 1).hits[0]
    assert top.start_ns == starts[1] and top.text == "the lamp is off" and top.action == "turn the lamp off"
    assert top.pose == moving_pose(starts[1])  # the pose at capture time, not at query time
    latest = memory.latest("state 0")
    assert latest.success and latest.moment.start_ns == starts[3] and latest.since_ns == starts[3]
    # the open moment (the current state) is answered too
    assert memory.query("state 3", 1).hits[0].start_ns == starts[4]
    w = memory.query("state 0", 5, window_ns=(starts[2], starts[3] + NS))
    assert [m.start_ns for m in w.hits if m.score > 0.9] == [starts[3]]
    region = memory.query("state 0", 5, region=((starts[3] / NS - 0.5, -1, 0), (starts[3] / NS + 0.5, 1, 2)))
    assert [m.start_ns for m in region.hits] == [starts[3]]


def test_latest_since_spans_a_run_of_matches(memory):
    # state 0 and a near copy of it: a change that does not concern the query splits the run
    near = STATES[0] * 0.9 + STATES[2] * 0.436
    extra = np.vstack([STATES, near / np.linalg.norm(near)])
    memory.encode_text = lambda texts: extra[[int(t.split()[-1]) for t in texts]]
    starts = play(memory, [(1, 4), (0, 4), (4, 4), (1, 4)], states=extra)
    memory.config.match_margin = 0.3
    latest = memory.latest("state 0")
    frame = NS / FPS
    assert abs(latest.moment.start_ns - starts[2]) <= 2 * frame and latest.since_ns == starts[1]


def test_bad_queries_get_clear_answers(memory):
    play(memory, [(0, 3), (1, 3)])
    assert memory.query("", 5).message == "query text is empty"
    assert not memory.query("   ", 5).success
    long = memory.query("x" * 10_000, 5)
    assert not long.success and "10,000 characters" in long.message and "max_query_chars" in long.message
    assert not memory.query("state 0", 0).success and "top_k" in memory.query("state 0", 0).message
    big = memory.query("state 0", 10**6)
    assert big.success and "capped to 1,000" in big.message and len(big.hits) == 2
    rev = memory.query("state 0", 5, window_ns=(200 * NS, 100 * NS))
    assert not rev.success and "reversed" in rev.message
    assert not memory.latest("state 0", window_ns=(200 * NS, 100 * NS)).success
    assert "reversed" in memory.query("state 0", 5, region=((1, 0, 0), (0, 1, 1))).message
    empty = memory.query("state 0", 5, window_ns=(1 * NS, 2 * NS))
    assert empty.success and empty.hits == [] and "no stored moment" in empty.message
    with pytest.raises(ValueError, match="max_top_k"):
        MemoryConfig(max_top_k=0)


def test_other_models_are_kept_flagged_and_skipped(tmp_path):
    path = str(tmp_path / "mem")
    old = SemanticMemory(MomentStore(path, D), "old@111111111111", encode)
    play(old, [(0, 3), (1, 3)])
    old.close()
    new = SemanticMemory(MomentStore(path, D), "new@222222222222", encode)
    play(new, [(2, 3)], t0_s=500.0)
    r = new.query("state 0", 10)
    assert r.success and r.skipped_other_models == 2
    assert all(m.model_id == "new@222222222222" for m in r.hits)
    assert "old@111111111111" in r.message and "not compared" in r.message
    s = new.stats()
    assert s["stored_other_models"] == 2 and s["other_model_ids"] == ["old@111111111111"]


def test_other_schema_or_dimension_is_refused(tmp_path):
    import lancedb
    import pyarrow as pa

    path = str(tmp_path / "old")
    lancedb.connect(path).create_table("moments", schema=pa.schema(
        [pa.field("id", pa.int64())], metadata={b"vljepa_ros.memory.schema": b"0"}))
    with pytest.raises(StoreError, match="schema version 0.*reads version 1"):
        MomentStore(path, D)
    MomentStore(str(tmp_path / "d"), D)
    with pytest.raises(StoreError, match="128-d"):
        MomentStore(str(tmp_path / "d"), 128)
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        MomentStore(str(tmp_path / "file"), D)


def test_read_only_directory_is_a_clear_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    code = textwrap.dedent(f"""
        import os, sys
        import lancedb  # noqa: F401 - imported while the files are readable
        from vljepa_ros.memory import MomentStore, StoreError
        if os.geteuid() == 0:
            os.setgid(65534); os.setuid(65534)   # root writes anywhere: test as nobody
        try:
            MomentStore({str(ro / "mem")!r}, 256)
        except StoreError as e:
            print("StoreError:", e); sys.exit(0)
        sys.exit(1)
    """)
    tmp_path.chmod(0o755)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=str(tmp_path), env={**os.environ, "HOME": str(tmp_path),
                                               "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "not writable" in r.stdout and "memory_dir" in r.stdout


def test_full_disk_keeps_moments_pending_until_a_write_succeeds(memory, monkeypatch):
    table = memory.store._table

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(table, "add", full)
    play(memory, [(0, 3), (1, 3), (2, 3)])
    s = memory.stats()
    assert s["pending"] == 2 and s["write_errors"] >= 1 and "no space left" in s["last_error"]
    assert memory.query("state 0", 1).hits[0].start_ns == 100 * NS  # still answered from memory
    monkeypatch.undo()
    assert memory.flush() == 2 and memory.stats()["last_error"] == "" and memory.store.count() == 2


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from vljepa_ros.memory import NS, MemoryConfig, MomentStore, SemanticMemory
    rng = np.random.default_rng(0)
    states = rng.standard_normal((2, 256)).astype(np.float32)
    mem = SemanticMemory(MomentStore(sys.argv[1], 256), "m@aaaaaaaaaaaa", lambda t: states[:1],
                         MemoryConfig(flush_batch=1))
    i = 0
    while True:  # a change every 2 s of camera time, forever
        e = states[(i // 30) % 2] + 0.005 * rng.standard_normal(256).astype(np.float32)
        mem.add_embedding(int((100 + i / 15) * NS), e / np.linalg.norm(e), "cam")
        if mem.flushed and mem.flushed != getattr(mem, "_printed", 0):
            mem._printed = mem.flushed
            print(mem.flushed, flush=True)
        i += 1
""")


def test_restart_keeps_every_flushed_moment_after_kill_9(tmp_path):
    path = str(tmp_path / "mem")
    proc = subprocess.Popen([sys.executable, "-c", WRITER, path], stdout=subprocess.PIPE, text=True)
    flushed = 0
    try:
        for line in proc.stdout:
            flushed = int(line)
            if flushed >= 12:
                break
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-stream: no close(), no flush
        proc.wait(timeout=30)
    assert flushed >= 12
    store = MomentStore(path, D)
    assert store.count() >= flushed  # every flushed moment survived, the table opens cleanly
    memory = SemanticMemory(store, "m@aaaaaaaaaaaa", encode)
    assert len(memory.query("state 0", 1000).hits) == store.count()


def test_index_keeps_answers_exact_for_the_best_match(tmp_path):
    store = MomentStore(str(tmp_path / "mem"), D, index_min_rows=600)
    vectors = unit_rows(700, seed=3)
    from vljepa_ros.memory import Moment

    store.add([Moment(start_ns=(i + 1) * NS, end_ns=(i + 1) * NS + 1, frame_id="cam", embedding=v,
                      model_id="m") for i, v in enumerate(vectors)])
    store.maintain()
    assert store._indexed_rows == 700
    for i in (0, 123, 699):
        hits = store.search(vectors[i], "m", 3)
        assert hits[0].moment.start_ns == (i + 1) * NS and hits[0].score == pytest.approx(1.0, abs=1e-4)
