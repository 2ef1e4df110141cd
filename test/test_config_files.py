"""Config files fail with the file and the key named (issue 11, fault 12):
the data generator's YAML and vljepa-train's."""
import pytest

from conftest import REPO_ROOT
from vljepa_ros.apps.train import TrainConfig
from vljepa_ros.config_files import ConfigError
from vljepa_ros.data.generate import load_config


@pytest.mark.parametrize("text, words", [
    ("episodes: {fps: [1,\n", ["not valid YAML"]),
    ("fpsx: 3\n", ["unknown key fpsx"]),                      # a top-level typo: was silently ignored
    ("episodes:\n  fsp: 3\n", ["unknown key fsp", "under 'episodes'"]),
    ("- a list\n", ["top level must be a mapping"]),
    ("episodes:\n  fps: fast\n", ["episodes.fps: 'fast' is not a number"]),
    ("episodes:\n  cam_azimuth_train_outer_p: 2.0\n", ["cam_azimuth_train_outer_p"]),  # EpisodeConfig's own check
])
def test_bad_data_configs_name_the_file(tmp_path, text, words):
    f = tmp_path / "world.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_config(str(f))
    assert str(f) in str(e.value) and all(w in str(e.value) for w in words)


def test_a_missing_base_names_the_file(tmp_path):
    f = tmp_path / "delta.yaml"
    f.write_text("base: nowhere.yaml\nepisodes: {fps: 3.0}\n")
    with pytest.raises(ConfigError, match="nowhere.yaml: cannot read it"):
        load_config(str(f))


@pytest.mark.parametrize("text, words", [
    ("steps: abc\n", ["steps: 'abc' is not an integer"]),   # started training before
    ("lr: fast\n", ["lr: 'fast' is not a number"]),
    ("stepz: 10\n", ["unknown key stepz"]),
    ("task_weights: 3\n", ["task_weights: 3 is not a mapping"]),
])
def test_bad_train_configs_name_the_file_and_key(tmp_path, text, words):
    f = tmp_path / "train.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as e:
        TrainConfig.from_yaml(str(f))
    assert str(f) in str(e.value) and all(w in str(e.value) for w in words)
    with pytest.raises(ConfigError, match="cannot read it"):
        TrainConfig.from_yaml(str(tmp_path / "missing.yaml"))


def test_the_shipped_configs_load_and_an_integer_is_fine_for_a_float(tmp_path):
    cfg = TrainConfig.from_yaml(str(REPO_ROOT / "config" / "train_tabletop.yaml"))
    assert cfg.steps > 0 and cfg.extra_data
    for name in ("sim_world", "sim_scenes", "sim_views", "sim_pairs", "sim_compositions", "sim_val_views"):
        load_config(str(REPO_ROOT / "config" / f"{name}.yaml"))
    f = tmp_path / "train.yaml"
    f.write_text("lr: 1\n")
    assert TrainConfig.from_yaml(str(f)).lr == 1
