"""Fact views: what the colour and the shape questions of a reading look at (numpy only).

A reading asks the colour and the shape of each cell apart
(``state_reading``), but from the same frame the predictor can learn one
from the other: in training a yellow object is only ever a cube or a
cylinder, so "what shape is the yellow thing?" is answered from its colour
and a yellow ball reads as a yellow cylinder (tools/fact_confusion.py on
held-out pairs: 45 % of yellow balls, and a purple cylinder is read purple
ball or as a cylinder of another colour half the time). Each question is
therefore asked on a view of the frame that holds only its own fact:

    colour view  the frame blurred (Gaussian, sigma = COLOUR_BLUR x size):
                 blobs of colour at their place, no outline to tell a ball
                 from a cube
    shape view   the frame in grey (one weighting of R, G and B for all three
                 channels): outlines and shading, no hue. In training every
                 frame gets its own random weighting (``shape_view_weights``),
                 so brightness does not name a colour either (with fixed
                 luma weights only yellow is bright); reading uses the mean
                 weighting (1/3 each)

A pair the training never showed (yellow x ball) then needs nothing new: a
yellow blob and a grey ball are each as seen before. Both views work on the
model's input, a (3,S,S) float frame in [-1,1] (``preprocess_frame``), so the
torch and the ONNX backends share this one definition.
"""

from __future__ import annotations

import functools
import hashlib

import numpy as np

COLOUR_BLUR = 0.04  # Gaussian sigma / input size: 6.4 px at 160 px (objects ~15 px, cells ~27 px apart)
VIEWS = ("colour", "shape")
RULE_VERSION = 1  # bump when a view changes in a way COLOUR_BLUR / the weights do not show (feature caches)
READING_SHAPE_WEIGHTS = (1 / 3, 1 / 3, 1 / 3)


@functools.lru_cache(maxsize=8)
def _blur_matrix(size: int, sigma: float) -> np.ndarray:
    """(S,S) row-normalised Gaussian weights: K @ x blurs the rows of x (edges
    renormalised, so the border does not darken). Written by hand: a blur as
    one matrix product is the same in numpy and torch, no imaging library
    gives both."""
    i = np.arange(size, dtype=np.float64)
    k = np.exp(-0.5 * ((i[:, None] - i[None, :]) / sigma) ** 2)
    k[k < 1e-4] = 0.0
    return (k / k.sum(1, keepdims=True)).astype(np.float32)


def colour_view(frame: np.ndarray) -> np.ndarray:
    """(3,S,S) float32 in [-1,1] -> the same frame blurred (separable Gaussian)."""
    k = _blur_matrix(frame.shape[-1], COLOUR_BLUR * frame.shape[-1])
    return (k @ frame.astype(np.float32) @ k.T).astype(np.float32)


def shape_view(frame: np.ndarray, weights=READING_SHAPE_WEIGHTS) -> np.ndarray:
    """(3,S,S) float32 in [-1,1] -> grey (weights . RGB, weights sum to 1) in all three channels."""
    w = np.asarray(weights, dtype=np.float32).reshape(3, 1, 1)
    grey = (frame.astype(np.float32) * w).sum(0, keepdims=True)
    return np.repeat(grey, 3, axis=0)


def shape_view_weights(key: str) -> np.ndarray:
    """The random RGB weighting of one training frame (uniform on the simplex),
    fixed by the frame's key so that a feature cache is reproducible."""
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little")
    return np.random.default_rng(seed).dirichlet(np.ones(3)).astype(np.float32)


def view(frame: np.ndarray, name: str, key: str | None = None) -> np.ndarray:
    """The named fact view of a frame; ``key`` (training only): a random
    shape-view weighting per frame instead of the reading's."""
    if name == "colour":
        return colour_view(frame)
    if name == "shape":
        return shape_view(frame, READING_SHAPE_WEIGHTS if key is None else shape_view_weights(key))
    raise ValueError(f"unknown fact view {name!r}; expected one of {VIEWS}")
