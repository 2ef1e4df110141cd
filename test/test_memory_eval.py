"""The memory evaluation command on a rendered mini episode (no dataset needed):
it runs end to end, writes its JSON and page, and the pose of every moment is
the simulator's camera pose at the moment's start stamp."""
import json

import pytest


@pytest.fixture(scope="module")
def report(tmp_path_factory, one_torch_thread):
    pytest.importorskip("mujoco")
    from vljepa_ros.memory import evaluate

    d = tmp_path_factory.mktemp("memeval")
    (d / "memory.md").write_text("# hand-written intro\n\nkept.\n")
    code = evaluate.main(["--render", "1", "--render-frames", "120", "--long-run", "600", "--margins", "0.1",
                          "--scale-json", "", "--json", str(d / "eval.json"), "--markdown", str(d / "memory.md")])
    assert code == 0
    return json.loads((d / "eval.json").read_text()), (d / "memory.md").read_text()


def test_pose_at_capture_time_is_the_simulators(report):
    r = report[0]["eval"]
    assert r["pose"]["with_pose"] == r["moments"] >= 1
    # a 50 Hz pose stream interpolated at the camera stamps: well under a millimetre, a hundredth of a degree
    assert r["pose"]["max_position_error_m"] < 1e-3 and r["pose"]["max_angle_error_deg"] < 1e-2


def test_recall_and_report(report):
    r, page = report
    ev = r["eval"]
    for kind in ("object", "lamp", "state"):
        for scope in ("episode", "pooled"):
            v = ev["recall"][kind][scope]
            assert v["queries"] >= 1 and 0.0 <= v["R@1"] <= v["R@5"] <= 1.0
    assert ev["recall"]["state"]["episode"]["R@5"] > 0.0  # the memory finds the states it saw
    assert "0.1" in ev["margin_sweep"]
    assert r["long_run"]["moments"] >= 10
    assert page.startswith("# hand-written intro\n\nkept.") and "| object | episode |" in page
