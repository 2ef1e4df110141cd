"""The Y-encoder's frozen-trunk cache (head-only training) changes nothing but speed."""
import torch

from vljepa_ros.models.text import tokenize
from vljepa_ros.models.vljepa import VLJEPA, VLJEPAConfig
from vljepa_ros.models.y_encoder import YEncoderConfig


def test_trunk_cache_matches_uncached_path_and_trains_the_head():
    torch.manual_seed(0)
    model = VLJEPA(VLJEPAConfig(y_encoder=YEncoderConfig(trainable_layers=0, lr_multiplier=1.0)))
    y = model.y_encoder
    texts = ["a red cube on the front left; the lamp is on", "the room is dark",
             "a red cube on the front left; the lamp is on"]
    ids, mask = tokenize(model.tokenizer, texts, y.cfg.max_length)
    cached = y(texts)
    assert len(y._trunk_cache) == 2  # duplicates share one entry
    assert torch.equal(cached, y.forward_ids(ids, mask))
    assert torch.equal(y(texts), cached)  # second call: all from the cache
    # Only the head trains, and it does get gradients through the cached path.
    trainable = {n for n, p in y.named_parameters() if p.requires_grad}
    assert trainable == {"head.weight", "head.bias"}
    y(texts).sum().backward()
    assert y.head.weight.grad is not None and y.head.weight.grad.abs().sum() > 0


def test_no_cache_when_a_minilm_layer_trains():
    model = VLJEPA(VLJEPAConfig(y_encoder=YEncoderConfig(trainable_layers=1, lr_multiplier=0.05)))
    model.y_encoder(["the lamp is on"])
    assert model.y_encoder._trunk_cache == {}
