"""A few steps of the real training pipeline on a tiny generated dataset, then
evaluation of the saved checkpoint on a tiny test split (CI smoke test)."""
import json

import pytest
import yaml

from conftest import REPO_ROOT


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    from vljepa_ros.data.generate import main as generate

    root = tmp_path_factory.mktemp("data") / "tiny"
    assert generate(["--out", str(root), "--episodes-train", "2", "--episodes-val", "1", "--episodes-test", "1",
                     "--max-frames", "60", "--image-size", "96", "--seed", "5"]) in (0, None)
    return root


def test_train_then_evaluate(tiny_dataset, tmp_path):
    from vljepa_ros.apps.evaluate import main as evaluate
    from vljepa_ros.apps.train import main as train
    from vljepa_ros.checkpoint import load_checkpoint

    config = yaml.safe_load((REPO_ROOT / "config" / "train_tabletop.yaml").read_text())
    config.update(data=str(tiny_dataset), extra_data=[], fact_view_data=[str(tiny_dataset)],
                  out=str(tmp_path / "run"), export=str(tmp_path / "model"),
                  steps=6, batch_size=16, warmup_steps=2, val_every=3, save_every=3, val_items=20,
                  decoder_steps=4, decoder_batch_size=8, decoder_predicted=32, decoder_states=40,
                  state_bank_max_objects=0)
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(config))
    assert train(["--config", str(tmp_path / "train.yaml"), "--no-progress"]) == 0
    state = json.loads((tmp_path / "run" / "state" / "state.json").read_text())
    assert state["step"] == 6 and [h["step"] for h in state["history"]] == [3, 6]
    ckpt = load_checkpoint(tmp_path / "model")
    assert ckpt.decoder is not None and ckpt.phrase_banks["state"] and ckpt.phrase_banks["action"]
    assert ckpt.provenance["train_config"]["steps"] == 6
    out = tmp_path / "eval.json"
    assert evaluate(["--model", str(tmp_path / "model"), "--data", str(tiny_dataset), "--split", "test",
                     "--out", str(out), "--max-items", "30"]) == 0
    report = json.loads(out.read_text())
    for key in ("state_top1", "state_top1_bank", "action_top1", "outcome_top1", "retrieval_r1", "retrieval_r5",
                "decoder_state_acc", "decoder_state_acc_bank", "decoder_state_parsed"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["state_bank_size"] == len(ckpt.phrase_banks["state"])
    assert report["model_id"] == ckpt.model_id and report["split"] == "test" and report["machine"]["cores"]


def test_decoder_texts_keep_each_meaning_with_a_few_paraphrases():
    from types import SimpleNamespace

    from vljepa_ros.apps.train import TrainConfig, decoder_texts
    from vljepa_ros.sim.captions import state_caption

    frames = {"e0": [{"caption": "a red cube", "paraphrases": [f"red cube v{i}", f"cube, red v{i}"]}
                     for i in range(50)],
              "e1": [{"caption": "the lamp is off", "paraphrases": ["dark room"]}]}
    transitions = [{"action": "push the red cube left", "action_paraphrases": ["move it left", "shove it left",
                                                                               "slide it left"]}]
    texts = decoder_texts(TrainConfig(decoder_paraphrases=2), SimpleNamespace(frames=frames, transitions=transitions))
    assert texts == sorted(["a red cube", "red cube v0", "cube, red v0", "the lamp is off", "dark room",
                            "push the red cube left", "move it left", "shove it left"])
    assert decoder_texts(TrainConfig(decoder_paraphrases=0),
                         SimpleNamespace(frames=frames, transitions=transitions)) == sorted(
        ["a red cube", "the lamp is off", "push the red cube left"])
    # decoder_states: captions of random states join (text only), with their paraphrases
    from vljepa_ros.sim.parse import parse_state

    more = decoder_texts(TrainConfig(decoder_paraphrases=1, decoder_states=200),
                         SimpleNamespace(frames=frames, transitions=transitions))
    extra = set(more) - set(texts)
    captions = {t for t in extra if (p := parse_state(t)) is not None and t == state_caption(p)}
    assert len(captions) > 120 and len(extra) > 1.8 * len(captions)  # 200 draws (empty tables repeat) + 1 paraphrase
    assert any("purple cylinder" in t for t in captions) and any(t.count(" and ") == 1 and t.count(",") == 1
                                                                 for t in captions)  # held-out pairs, 3 objects
