"""Shipped model checkpoints (trained parts only, fp16 safetensors + JSON).

``tabletop/`` is the default model, trained on the simulated tabletop world by
``make train`` (config/train_tabletop.yaml); see docs/model_card.md.
"""

from __future__ import annotations

from pathlib import Path

DEFAULT_MODEL = "tabletop"


def default_model_path() -> Path:
    return Path(__file__).resolve().parent / DEFAULT_MODEL
