"""Streams (synthetic in tests, from the model in the benchmark) and mappers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Stream:
    """One episode played at the camera rate."""

    episode: str
    stamps: np.ndarray            # (N,) seconds of stream time
    embeddings: np.ndarray        # (N, D) float32, unit rows (perception_node's ~/embedding)
    truth: np.ndarray             # (N,) int: index into the state bank of the true current state
    transitions_s: np.ndarray     # (K,) true transition start times (seconds)
    # the state read fact by fact on each frame's window (perception_node's
    # ~/state_reading, which decoder_node's events say): (N, D) its caption's
    # embedding and (N,) its index into the state bank (-1: not a state of the
    # split, wrong). Every policy says the reading of the frame it decodes at;
    # None = decode the embeddings themselves
    readings: np.ndarray | None = None
    reading_ids: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.stamps.shape[0])


def texts_at(s: Stream, mapper: Mapper, frames: Sequence[int], embeddings: np.ndarray | None = None):
    """(bank ids, text embeddings) of the texts said at ``frames``: the readings
    there, or the decoded ``embeddings`` (default: the frames' own)."""
    if s.readings is not None:
        fr = np.asarray(frames, dtype=np.int64)
        return s.reading_ids[fr], s.readings[fr].astype(np.float64)
    if not len(frames):
        return np.zeros(0, int), np.zeros((0, mapper.truth_embeddings.shape[1]))
    return mapper.decode(s.embeddings[list(frames)] if embeddings is None else embeddings)


@dataclass
class Mapper:
    """Decoded output of embeddings: ``decode(embeddings (M,D)) -> (bank ids (M,), text embeddings (M,E))``.

    ``truth_embeddings`` (bank size, E): the bank's captions in the same text
    space, for the similarity metric.
    """

    decode: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
    truth_embeddings: np.ndarray
    calls: int = 0
