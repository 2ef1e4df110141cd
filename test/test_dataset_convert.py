import json

import numpy as np
import pytest
from PIL import Image

from vljepa_ros.data.convert import ConvertError, convert, main
from vljepa_ros.data.dataset import Dataset


def _images(d, n=6):
    d.mkdir()
    for i in range(n):
        Image.fromarray(np.full((20, 30, 3), i * 20, np.uint8)).save(d / f"img_{i:03d}.png")
    return d


def _caps(p, lines):
    p.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return p


def test_convert_folder(tmp_path):
    imgs = _images(tmp_path / "imgs")
    caps = _caps(tmp_path / "c.jsonl", [
        {"t": 0.0, "caption": "a red cube on the left"},
        {"frame": 3, "caption": "a red cube on the right"},
        {"frame": 2, "frame_end": 2, "action": "push the red cube to the right"},
    ])
    out = tmp_path / "out"
    rc = main(["--images", str(imgs), "--captions", str(caps), "--out", str(out),
               "--split", "train", "--episode", "ep1", "--fps", "10"])
    assert rc == 0
    ds = Dataset(str(out), "train")
    fr = ds.episode_frames("ep1")
    assert len(fr) == 6
    assert [f.caption for f in fr] == ["a red cube on the left"] * 3 + ["a red cube on the right"] * 3
    assert fr[4].image.shape == (20, 30, 3) and fr[4].image[0, 0, 0] == 80
    tr = ds.transitions("ep1")
    assert len(tr) == 1 and tr[0]["before_frames"] == [0, 1] and tr[0]["after_frames"] == [3, 5]
    assert tr[0]["before_state"] == "a red cube on the left"
    assert tr[0]["after_state"] == "a red cube on the right"
    assert fr[2]["transition_id"] == "a000" and fr[0]["transition_id"] is None


def test_convert_bad_input(tmp_path, capsys):
    imgs = _images(tmp_path / "imgs", 2)
    good = _caps(tmp_path / "c.jsonl", [{"t": 0, "caption": "x"}])
    out = str(tmp_path / "o")
    with pytest.raises(ConvertError, match="no such file"):
        convert(str(tmp_path / "missing"), str(good), out, "train", "e")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConvertError, match="no images"):
        convert(str(tmp_path / "empty"), str(good), out, "train", "e")
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json}\n")
    with pytest.raises(ConvertError, match="bad JSON"):
        convert(str(imgs), str(bad), out, "train", "e")
    with pytest.raises(ConvertError, match="\"t\""):
        convert(str(imgs), str(_caps(tmp_path / "n.jsonl", [{"caption": "x"}])), out, "train", "e")
    with pytest.raises(ConvertError, match="caption.*or.*action"):
        convert(str(imgs), str(_caps(tmp_path / "k.jsonl", [{"t": 0}])), out, "train", "e")
    vid = tmp_path / "v.mp4"
    vid.write_bytes(b"\x00" * 10)
    try:
        import av  # noqa: F401
    except ImportError:
        try:
            import imageio  # noqa: F401
        except ImportError:
            with pytest.raises(ConvertError, match="PyAV"):
                convert(str(vid), str(good), out, "train", "e")
    rc = main(["--images", str(tmp_path / "missing"), "--captions", str(good), "--out", out,
               "--episode", "e"])
    assert rc == 2 and "error:" in capsys.readouterr().err
