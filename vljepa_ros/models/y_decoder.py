"""Y-decoders: embedding (B,D) -> text. Run only when someone needs text.

* ``RetrievalDecoder``: nearest phrase of a ``PhraseBank`` (classification).
  confidence = softmax probability over the bank at the model's temperature.
* ``GenerativeDecoder``: a small GPT-style decoder conditioned on the embedding
  (projected to one prefix token), over a SUB-vocabulary of MiniLM's WordPiece
  ids (only ids seen in the training text, so the output layer stays small).
  Trained text-only to invert Y-encoder embeddings; Gaussian noise on the
  conditioning embedding makes it tolerate the predictor's (imperfect) outputs.

Sequence layout for the generative decoder::

    position: 0        1      2    ...  n     n+1
    input:    prefix   [CLS]  t_1  ...  t_n
    target:   [CLS]?   t_1    t_2  ...  [SEP]          (position 0 predicts nothing)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..world_types import Decoded  # torch-free, shared with the ONNX runtime
from .text import init_linear, tokenize
from .y_encoder import PhraseBank


class YDecoder(Protocol):
    def decode(self, embeddings: torch.Tensor) -> list[Decoded]: ...


class RetrievalDecoder:
    def __init__(self, bank: PhraseBank, temperature: float | torch.Tensor):
        self.bank = bank
        self.temperature = float(temperature.detach() if isinstance(temperature, torch.Tensor) else temperature)

    @torch.no_grad()
    def decode(self, embeddings: torch.Tensor) -> list[Decoded]:
        # embeddings (B,D) -> B results
        e = F.normalize(embeddings.float(), dim=-1)
        probs = torch.softmax(e @ self.bank.embeddings.T / self.temperature, dim=-1)  # (B,N)
        conf, idx = probs.max(dim=-1)
        texts = self.bank.texts
        return [Decoded(texts[i], c) for i, c in zip(idx.tolist(), conf.tolist())]


@dataclass
class GenerativeDecoderConfig:
    embed_dim: int = 256  # D of the conditioning embedding
    width: int = 256
    layers: int = 2
    heads: int = 4
    max_len: int = 24  # max generated WordPiece tokens (excl. [CLS])
    noise_std: float = 0.1  # Gaussian noise on the unit conditioning embedding while training
    dropout: float = 0.0


class CausalBlock(nn.Module):
    """Pre-LN transformer block with causal self-attention (nanoGPT's Block)."""

    def __init__(self, width: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(width)
        self.qkv = init_linear(nn.Linear(width, 3 * width))
        self.proj = init_linear(nn.Linear(width, width))
        self.ln2 = nn.LayerNorm(width)
        self.fc1 = init_linear(nn.Linear(width, 4 * width))
        self.fc2 = init_linear(nn.Linear(4 * width, width))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x (B,N,W)
        B, N, W = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(W, dim=2)
        q, k, v = (t.view(B, N, self.heads, W // self.heads).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, N, W)
        x = x + self.drop(self.proj(y))
        return x + self.drop(self.fc2(F.gelu(self.fc1(self.ln2(x)))))


class GenerativeDecoder(nn.Module):
    def __init__(self, cfg: GenerativeDecoderConfig, vocab_ids: torch.Tensor, tokenizer, full_vocab_size: int = 30522):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = tokenizer
        ids = torch.as_tensor(vocab_ids, dtype=torch.long)
        special = torch.tensor(
            [tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.cls_token_id, tokenizer.sep_token_id]
        )
        ids = torch.unique(torch.cat([special, ids]))  # sorted, specials included
        # Sub-vocabulary: which MiniLM ids the decoder can emit; saved with the weights.
        self.register_buffer("vocab_ids", ids)
        full_to_sub = torch.full((full_vocab_size,), -1, dtype=torch.long)
        full_to_sub[ids] = torch.arange(len(ids))
        self.register_buffer("full_to_sub", full_to_sub, persistent=False)  # derived from vocab_ids
        self.unk_sub = int(full_to_sub[tokenizer.unk_token_id])
        self.bos_sub = int(full_to_sub[tokenizer.cls_token_id])
        self.eos_sub = int(full_to_sub[tokenizer.sep_token_id])
        self.pad_sub = int(full_to_sub[tokenizer.pad_token_id])

        V, W = len(ids), cfg.width
        self.cond = init_linear(nn.Linear(cfg.embed_dim, W))
        self.tok = nn.Embedding(V, W)
        self.pos = nn.Embedding(cfg.max_len + 2, W)  # prefix + [CLS] + max_len tokens
        nn.init.normal_(self.tok.weight, std=0.02)
        nn.init.normal_(self.pos.weight, std=0.02)
        self.blocks = nn.ModuleList(CausalBlock(W, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.ln_f = nn.LayerNorm(W)
        self.head = init_linear(nn.Linear(W, V))

    @classmethod
    def from_texts(cls, cfg: GenerativeDecoderConfig, texts: list[str], tokenizer) -> GenerativeDecoder:
        """Sub-vocabulary = the WordPiece ids occurring in ``texts``."""
        ids, mask = tokenize(tokenizer, texts, cfg.max_len + 2)
        return cls(cfg, torch.unique(ids[mask]), tokenizer, len(tokenizer))

    @property
    def vocab_size(self) -> int:
        return self.vocab_ids.numel()

    def config_dict(self) -> dict:
        return asdict(self.cfg)

    def to_sub(self, full_ids: torch.Tensor) -> torch.Tensor:
        sub = self.full_to_sub[full_ids]
        return torch.where(sub < 0, torch.full_like(sub, self.unk_sub), sub)

    def condition(self, embeddings: torch.Tensor) -> torch.Tensor:
        # (B,D) -> (B,D) unit norm; noisy while training
        e = F.normalize(embeddings.float(), dim=-1)
        if self.training and self.cfg.noise_std > 0:
            e = F.normalize(e + self.cfg.noise_std * torch.randn_like(e), dim=-1)
        return e

    def forward(self, embeddings: torch.Tensor, sub_ids: torch.Tensor) -> torch.Tensor:
        # embeddings (B,D), sub_ids (B,L) starting with [CLS] -> logits (B,L,V); logits[:,i] predicts sub_ids[:,i+1]
        B, L = sub_ids.shape
        prefix = self.cond(self.condition(embeddings))[:, None]  # (B,1,W)
        x = torch.cat([prefix, self.tok(sub_ids)], dim=1)  # (B,1+L,W)
        x = x + self.pos(torch.arange(L + 1, device=x.device))[None]
        for b in self.blocks:
            x = b(x)
        return self.head(self.ln_f(x[:, 1:]))  # drop the prefix position

    @torch.no_grad()
    def generate(self, embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy, batched, at most max_len tokens -> (sub ids (B,n), mean log-prob (B,))."""
        B = embeddings.shape[0]
        seq = torch.full((B, 1), self.bos_sub, dtype=torch.long, device=embeddings.device)
        logp_sum = torch.zeros(B, device=embeddings.device)
        n_tok = torch.zeros(B, device=embeddings.device)
        done = torch.zeros(B, dtype=torch.bool, device=embeddings.device)
        for _ in range(self.cfg.max_len):
            logp = torch.log_softmax(self.forward(embeddings, seq)[:, -1].float(), dim=-1)  # (B,V)
            lp, nxt = logp.max(dim=-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_sub), nxt)
            logp_sum += torch.where(done, 0.0, lp)
            n_tok += (~done).float()
            seq = torch.cat([seq, nxt[:, None]], dim=1)
            done |= nxt == self.eos_sub
            if bool(done.all()):
                break
        return seq[:, 1:], logp_sum / n_tok.clamp_min(1)

    def decode(self, embeddings: torch.Tensor) -> list[Decoded]:
        was = self.training
        self.eval()
        sub, mean_logp = self.generate(embeddings)
        self.train(was)
        full = self.vocab_ids[sub]  # back to MiniLM ids
        out = []
        for row, lp in zip(full.tolist(), mean_logp.tolist()):
            if self.tokenizer.sep_token_id in row:
                row = row[: row.index(self.tokenizer.sep_token_id)]
            text = self.tokenizer.decode(row, skip_special_tokens=True).strip()
            out.append(Decoded(text, math.exp(lp)))  # confidence = geometric-mean token prob
        return out


def generative_decoder_loss(
    decoder: GenerativeDecoder, embeddings: torch.Tensor, token_ids: torch.Tensor
) -> torch.Tensor:
    """Teacher-forced cross-entropy for one batch.

    embeddings (B,D): Y-encoder embeddings of the texts (detached; the decoder is
    trained text-only, after/alongside the model). token_ids (B,L): MiniLM ids
    as the tokenizer gives them ([CLS] ... [SEP] then pad 0).
    """
    mask = token_ids != decoder.tokenizer.pad_token_id  # (B,L)
    sub = decoder.to_sub(token_ids)
    L = min(token_ids.shape[1], decoder.cfg.max_len + 1)  # [CLS] + up to max_len targets
    sub, mask = sub[:, :L], mask[:, :L]
    logits = decoder(embeddings.detach(), sub[:, :-1])  # (B,L-1,V)
    target = sub[:, 1:].masked_fill(~mask[:, 1:], -100)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100)
