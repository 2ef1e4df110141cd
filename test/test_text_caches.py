"""~/ask with ever new candidates grew perception_node's memory (issue 11,
fault 4): the world model kept 256 candidate lists whatever their size. It
now keeps the most recently used lists up to a number of texts."""
import numpy as np
import pytest


@pytest.fixture(scope="module")
def world(one_torch_thread):
    from vljepa_ros.checkpoint import load_model
    from vljepa_ros.world_model import WorldModel

    ckpt = load_model()
    wm = WorldModel(ckpt.model, ["a red cube", "an empty table"], ["push the cube"], window_frames=2)
    wm.push_frame(np.zeros((96, 96, 3), np.uint8), 0.0)
    return wm


def test_candidate_lists_are_kept_by_texts_least_recently_used_first(world):
    from vljepa_ros.world_model import PHRASE_CACHE_TEXTS

    assert PHRASE_CACHE_TEXTS == world.phrase_cache_texts == 16_384
    world.phrase_cache_texts = 30
    lists = [[f"answer {i}.{k}" for k in range(10)] for i in range(6)]
    world.ask("which?", lists[0])
    for i in range(1, 6):
        world.ask("which?", lists[i])
        world.ask("which?", lists[0])  # used again: stays
        cached = list(world._phrase_cache)
        assert sum(len(k) for k in cached) <= 30
        assert tuple(lists[0]) in cached and tuple(lists[i]) in cached
    assert tuple(lists[1]) not in world._phrase_cache  # the least recently used went first
    answer = world.ask("which?", lists[5])
    assert sorted(answer.labels) == sorted(lists[5])


def test_the_onnx_world_model_uses_the_same_bounded_cache():
    # the ONNX runtime kept 256 lists of any size, then dropped them all at once
    from vljepa_ros.world_types import CandidateCache

    cache = CandidateCache(max_texts=25)
    made = []
    for i in range(4):
        cache.get_or_make(tuple(f"t{i}.{k}" for k in range(10)), lambda i=i: made.append(i) or i)
    assert made == [0, 1, 2, 3] and sum(len(k) for k in cache) <= 25
    assert list(cache.values()) == [2, 3]  # least recently used first out
    assert cache.get_or_make(tuple(f"t2.{k}" for k in range(10)), lambda: 99) == 2  # a hit makes nothing
    assert list(cache.values()) == [3, 2]
