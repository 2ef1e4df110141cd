"""VL-JEPA model core (ROS-free): X-encoder, predictor, Y-encoder, loss, Y-decoders.

One file per concept; ``vljepa.py`` assembles them.
"""

from .backbones import FrameBackbone, available_backbones, build_backbone, register_backbone
from .loss import InfoNCE, LossConfig
from .predictor import Predictor, PredictorConfig
from .vljepa import VLJEPA, VLJEPAConfig
from .x_encoder import FrameFeatureCache, XEncoder, XEncoderConfig, preprocess_frame
from .y_decoder import (
    Decoded,
    GenerativeDecoder,
    GenerativeDecoderConfig,
    RetrievalDecoder,
    YDecoder,
    generative_decoder_loss,
)
from .y_encoder import PhraseBank, YEncoder, YEncoderConfig

__all__ = [
    "FrameBackbone",
    "available_backbones",
    "build_backbone",
    "register_backbone",
    "InfoNCE",
    "LossConfig",
    "Predictor",
    "PredictorConfig",
    "VLJEPA",
    "VLJEPAConfig",
    "FrameFeatureCache",
    "XEncoder",
    "XEncoderConfig",
    "preprocess_frame",
    "Decoded",
    "GenerativeDecoder",
    "GenerativeDecoderConfig",
    "RetrievalDecoder",
    "YDecoder",
    "generative_decoder_loss",
    "PhraseBank",
    "YEncoder",
    "YEncoderConfig",
]
