"""X-encoder: frozen backbone -> visual tokens for a window of T frames.

Split in two so a stream runs the backbone once per frame:

* ``XEncoder.encode_frames``: images (B,3,H,W) -> pooled features (B,C,g,g).
  Frozen and parameter-free after the backbone, so its output can be cached
  (``FrameFeatureCache``) and reused by every window that contains the frame.
* ``XEncoder.tokens``: window features (B,T,C,g,g) -> tokens (B,T*g*g,W), the
  trainable part (LayerNorm + linear projection + space/time embeddings).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .backbones import FrameBackbone, build_backbone


@dataclass
class XEncoderConfig:
    backbone: str = "efficientnet_lite0"
    image_size: int = 160  # 160 (fast) or 224
    stage: str = "final"  # backbone feature map: "final" (stride 32) or "stride16" (backbones.py)
    grid: int = 3  # feature map adaptive-avg-pooled to grid x grid tokens per frame
    window_frames: int = 4  # T: frames per window (time embeddings)
    width: int = 384  # predictor width (MiniLM hidden size)


def preprocess_frame(image: np.ndarray, image_size: int) -> torch.Tensor:
    """uint8 RGB (H,W,3) -> float (3,S,S) in [-1,1].

    The frame is resized to a square without cropping (the whole table stays in
    view); antialias avoids aliasing when a large camera image is shrunk.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected uint8 RGB array (H,W,3), got "
            f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
        )
    if not image.flags.writeable:  # e.g. a view of a ROS message buffer: torch wants writable memory
        image = image.copy()
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()  # (1,3,H,W) 0..255
    if x.shape[-2:] != (image_size, image_size):
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True)
    return (x[0] / 127.5 - 1.0).clamp_(-1.0, 1.0)  # EfficientNet-Lite expects [-1,1]


def pad_window(frames: torch.Tensor, window_frames: int) -> torch.Tensor:
    """The one rule for a window at a stream's start, shared by training,
    evaluation and serving: (n,C,g,g) frames oldest first, 1 <= n <= T ->
    (T,C,g,g), the oldest frame repeated in front (a camera that has just
    started has "seen" its first frame for the whole window)."""
    n = frames.shape[0]
    if not 1 <= n <= window_frames:
        raise ValueError(f"a window holds 1..{window_frames} frames, got {n}")
    if n == window_frames:
        return frames
    return torch.cat([frames[:1].expand(window_frames - n, *frames.shape[1:]), frames])


def window_at(frames: torch.Tensor, end: int, window_frames: int) -> torch.Tensor:
    """(N,C,g,g) features of a whole stream -> the (T,C,g,g) window ending at frame ``end``."""
    return pad_window(frames[max(0, end - window_frames + 1): end + 1], window_frames)


class XEncoder(nn.Module):
    def __init__(self, cfg: XEncoderConfig, backbone: FrameBackbone | None = None):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone if backbone is not None else build_backbone(cfg.backbone, cfg.image_size, cfg.stage)
        C, g, W = self.backbone.out_channels, cfg.grid, cfg.width
        self.ln = nn.LayerNorm(C)  # backbone activations are unnormalised (ReLU6 outputs)
        self.proj = nn.Linear(C, W)
        self.pos = nn.Parameter(torch.zeros(g * g, W))  # spatial, shared by all frames
        self.time = nn.Parameter(torch.zeros(cfg.window_frames, W))  # index T-1 = newest frame
        nn.init.normal_(self.proj.weight, std=0.02)
        nn.init.zeros_(self.proj.bias)
        nn.init.normal_(self.pos, std=0.02)
        nn.init.normal_(self.time, std=0.02)

    def encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        # images (B,3,S,S) in [-1,1] -> (B,C,g,g); frozen, no graph
        with torch.no_grad():
            fmap = self.backbone(images)  # (B,C,h,w)
            return F.adaptive_avg_pool2d(fmap, self.cfg.grid)

    def tokens(self, features: torch.Tensor) -> torch.Tensor:
        # features (B,T,C,g,g), T <= window_frames, last = newest -> tokens (B,T*g*g,W)
        B, T, C, g, _ = features.shape
        if T > self.cfg.window_frames:
            raise ValueError(f"window has {T} frames, model supports at most {self.cfg.window_frames}")
        x = features.to(self.proj.weight.dtype).flatten(3).transpose(2, 3)  # (B,T,g*g,C); caches may hold fp16
        x = self.proj(self.ln(x))  # (B,T,g*g,W)
        # A short window (start of a stream) takes the LAST T time slots, so
        # "the newest frame" always has the same embedding.
        t = self.time[self.cfg.window_frames - T :]  # (T,W)
        x = x + self.pos[None, None] + t[None, :, None]
        return x.reshape(B, T * g * g, -1)


class FrameFeatureCache:
    """Ring buffer of per-frame features keyed by frame stamp (seconds).

    A sliding window over a stream then costs one backbone call per new frame.
    Stamps must increase; a duplicate or older stamp is ignored (returns False),
    which is what a ROS subscriber wants for re-delivered/out-of-order frames.
    """

    def __init__(self, capacity: int = 64):
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self._stamps: deque[float] = deque(maxlen=capacity)
        self._feats: deque[torch.Tensor] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def stamps(self) -> list[float]:
        return list(self._stamps)

    def push(self, stamp_s: float, features: torch.Tensor) -> bool:
        # features (C,g,g) for one frame
        if self._stamps and stamp_s <= self._stamps[-1]:
            return False
        self._stamps.append(float(stamp_s))
        self._feats.append(features.detach())
        return True

    def get(self, stamp_s: float) -> torch.Tensor | None:
        for s, f in zip(self._stamps, self._feats):
            if s == stamp_s:
                return f
        return None

    def latest(self, n: int, until_s: float | None = None) -> tuple[torch.Tensor, list[float]]:
        """The last n frames with stamp <= until_s (default: newest) -> ((n',C,g,g), stamps), oldest first."""
        idx = [i for i, s in enumerate(self._stamps) if until_s is None or s <= until_s][-n:]
        if not idx:
            raise LookupError("no cached frames" + ("" if until_s is None else f" at or before t={until_s}"))
        return torch.stack([self._feats[i] for i in idx]), [self._stamps[i] for i in idx]

    def clear(self) -> None:
        self._stamps.clear()
        self._feats.clear()
