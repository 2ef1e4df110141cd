import os
import tempfile

os.environ.setdefault("MESA_SHADER_CACHE_DIR", tempfile.mkdtemp(prefix="mesa_"))

import numpy as np
import pytest

from vljepa_ros.data.dataset import Dataset, read_meta
from vljepa_ros.data.generate import episode_seed, main
from vljepa_ros.sim.episodes import DEFAULT_HELD_OUT, EpisodeConfig, EpisodeScript


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("ds"))
    rc = main(["--out", root, "--episodes-train", "1", "--episodes-val", "0",
               "--episodes-test", "1", "--seed", "0", "--image-size", "48",
               "--max-frames", "45"])
    assert rc == 0
    return root


def test_round_trip(tiny):
    meta = read_meta(tiny)
    for k in ("seed", "image_size", "fps", "counts", "world", "created", "generator_version", "config"):
        assert k in meta
    ds = Dataset(tiny, "train")
    assert ds.episodes() == ["train_00000"]
    assert len(ds) == 45 == meta["counts"]["train"]["frames"]
    frames = ds.episode_frames("train_00000")
    assert [f.index for f in frames] == list(range(45))
    img = frames[0].image
    assert img.shape == (48, 48, 3) and img.dtype == np.uint8
    for f in frames:
        assert f.caption and len(f["paraphrases"]) >= 3
        assert f["state"]["lamp_on"] in (True, False)
        assert os.path.exists(f.path)
    # images match a fresh render of the same script (deterministic generator)
    s = EpisodeScript.generate(episode_seed(0, "train", 0), "train", EpisodeConfig())
    s.n_frames = 3
    fresh = [rgb for _, _, rgb, _ in s.frames(width=48, height=48)]
    for a, b in zip(fresh, frames[:3]):
        assert np.array_equal(a, b.image)
    test = Dataset(tiny, "test")
    assert len(test) == 45
    for tr in ds.transitions() + test.transitions():
        for k in ("episode", "id", "kind", "action", "action_paraphrases", "t_start", "t_end",
                  "before_frames", "after_frames", "before_state", "after_state"):
            assert k in tr
        assert len(tr["action_paraphrases"]) >= 3
        if tr["before_frames"]:
            a, b = tr["before_frames"]
            assert b < tr["frame_start"]
    with pytest.raises(FileNotFoundError):
        Dataset(tiny, "val")


def test_held_out_compositions_and_cameras():
    cfg = EpisodeConfig()
    held = set(DEFAULT_HELD_OUT)
    seen_test = set()
    az_train, az_test = [], []
    for i in range(40):
        for split in ("train", "val"):
            s = EpisodeScript.generate(episode_seed(0, split, i), split, cfg)
            for t in s.truths()[::5]:
                for o in t.objects:
                    assert (o["colour"], o["shape"]) not in held
            az_train.append(s.params.cam_azimuth)
        s = EpisodeScript.generate(episode_seed(0, "test", i), "test", cfg)
        az_test.append(s.params.cam_azimuth)
        names = {(c, sh) for c, sh, _ in s.initial_objects} | {
            (e.colour, e.shape) for e in s.events if e.kind == "place"}
        seen_test |= names & held
    assert seen_test == held
    lo, hi = cfg.cam_azimuth_train
    assert all(90 + lo <= a <= 90 + hi for a in az_train)
    tlo, _ = cfg.cam_azimuth_test_abs
    assert all(abs(a - 90) >= tlo for a in az_test)
