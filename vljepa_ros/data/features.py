"""Cached frozen-backbone features, so CPU training touches each frame once.

The X-encoder's backbone is frozen, so its output for a frame never changes
during training. ``load_features`` runs it once over a split and stores the
pooled feature maps per episode in a safetensors file next to the data:

    <root>/cache/features-<split>-<backbone>[-<stage>]-<size>px-g<grid>[-<view>].safetensors
        <episode>: (N_frames, C, g, g) float16

``view``: the features of a fact view of every frame (vljepa_ros/fact_views.py)
instead of the frame; "shape-random" is the shape view with each frame's own
random weighting (training).

The file's metadata records the frame count of every episode and the dataset's
creation stamp; a cache that does not match the dataset is recomputed.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor

import torch
from tqdm import tqdm

from .. import fact_views
from ..models.x_encoder import XEncoder, preprocess_frame
from .dataset import Dataset

FEATURE_VIEWS = (None, "colour", "shape", "shape-random")


def cache_path(dataset: Dataset, x_encoder: XEncoder, view: str | None = None) -> str:
    cfg = x_encoder.cfg
    stage = "" if cfg.stage == "final" else f"-{cfg.stage}"
    suffix = f"-{view}" if view else ""
    name = f"features-{dataset.split}-{cfg.backbone}{stage}-{cfg.image_size}px-g{cfg.grid}{suffix}.safetensors"
    return os.path.join(dataset.root, "cache", name)


def _signature(dataset: Dataset) -> dict:
    counts = {ep: len(dataset.episode_frames(ep)) for ep in dataset.episodes()}
    return {"created": str(dataset.meta.get("created", "")), "counts": counts}


def _frame_input(image, size: int, view: str | None, key: str) -> torch.Tensor:
    x = preprocess_frame(image, size)
    if view is None:
        return x
    name, random_weights = view.split("-")[0], view.endswith("-random")
    return torch.from_numpy(fact_views.view(x.numpy(), name, key if random_weights else None))


@torch.no_grad()
def load_features(dataset: Dataset, x_encoder: XEncoder, batch_size: int = 32,
                  progress: bool = True, view: str | None = None) -> dict[str, torch.Tensor]:
    """episode -> (N, C, g, g) float16 backbone features (of the fact ``view``
    of each frame when given), from cache or computed."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    if view not in FEATURE_VIEWS:
        raise ValueError(f"unknown feature view {view!r}; expected one of {FEATURE_VIEWS}")
    path = cache_path(dataset, x_encoder, view)
    signature = _signature(dataset)
    if view:  # a change of the views' rule must not reuse old features
        signature["view"] = {"blur": fact_views.COLOUR_BLUR, "shape": list(fact_views.READING_SHAPE_WEIGHTS),
                             "rule": fact_views.RULE_VERSION}
    if os.path.exists(path):
        with safe_open(path, "pt") as f:
            if json.loads((f.metadata() or {}).get("signature", "null")) == signature:
                return {ep: f.get_tensor(ep) for ep in signature["counts"]}
    size = x_encoder.cfg.image_size
    out: dict[str, torch.Tensor] = {}
    total = sum(signature["counts"].values())
    bar = tqdm(total=total, desc=f"backbone features ({dataset.split}, {size}px{', ' + view if view else ''})",
               unit="frame",
               disable=not progress)
    # Batches run across episodes (a snapshot set has one frame per episode), and
    # PNG decoding releases the GIL: decode the next batch while the backbone runs.
    name = os.path.basename(os.path.normpath(dataset.root))
    frames = [(ep, k, f) for ep in dataset.episodes() for k, f in enumerate(dataset.episode_frames(ep))]
    if not frames:
        raise ValueError(f"{dataset.root}: split {dataset.split!r} has no frames")
    chunks = [frames[i:i + batch_size] for i in range(0, len(frames), batch_size)]

    def load(chunk):  # the key gives a frame its own random weighting (shape-random)
        return torch.stack([_frame_input(dataset.image(f), size, view, f"{name}/{ep}/{k}") for ep, k, f in chunk])

    feats = []
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = pool.submit(load, chunks[0]) if chunks else None
        for k in range(len(chunks)):
            images = pending.result()
            pending = pool.submit(load, chunks[k + 1]) if k + 1 < len(chunks) else None
            feats.append(x_encoder.encode_frames(images).to(torch.float16))
            bar.update(len(images))
    stacked = torch.cat(feats)
    start = 0
    for ep, n in signature["counts"].items():
        out[ep] = stacked[start:start + n]
        start += n
    bar.close()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    save_file({ep: t.contiguous() for ep, t in out.items()}, tmp, metadata={"signature": json.dumps(signature)})
    os.replace(tmp, path)
    return out


def load_fact_view_features(dataset: Dataset, x_encoder: XEncoder, random_shape: bool = False,
                            progress: bool = True) -> dict[str, dict[str, torch.Tensor]]:
    """fact -> episode -> features of that fact view (what ``SplitTasks(views=)``
    takes); ``random_shape``: each frame's own shape-view weighting (training)."""
    return {"colour": load_features(dataset, x_encoder, progress=progress, view="colour"),
            "shape": load_features(dataset, x_encoder, progress=progress,
                                   view="shape-random" if random_shape else "shape")}
