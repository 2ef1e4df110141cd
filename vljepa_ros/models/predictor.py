"""Predictor: (visual tokens, query tokens) -> predicted answer embedding.

As in the paper, it is initialised from the TOP layers of a pretrained language
model (here the top K of MiniLM's 6), run with bidirectional attention (no
causal mask), mean-pooled over non-pad tokens and projected by a linear head
into the shared D-dim space, where it is compared with Y-encoder targets.

Input sequence (one window)::

    [ v_1 .. v_Nv | [CLS] q_1 .. q_Lq [SEP] [PAD] .. ]
      visual tokens   query tokens (frozen MiniLM word/pos embeddings)

With a second ("before") window, for "which action linked before -> after"::

    [ before tokens + seg_0 | after tokens + seg_1 | query tokens ]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .text import BertBlock, BertEmbeddings, init_head, masked_mean


@dataclass
class PredictorConfig:
    layers: int = 2  # top-K MiniLM layers used as the predictor
    embed_dim: int = 256  # D, shared embedding space
    dropout: float = 0.0


class Predictor(nn.Module):
    def __init__(self, cfg: PredictorConfig, text_embeddings: BertEmbeddings, blocks: list[BertBlock]):
        super().__init__()
        assert len(blocks) == cfg.layers
        self.cfg = cfg
        W = text_embeddings.word.embedding_dim
        self.text_embeddings = text_embeddings  # frozen, shared with the Y-encoder
        self.visual_ln = nn.LayerNorm(W, eps=1e-12)  # bring visual tokens to the scale the BERT layers expect
        self.segment = nn.Parameter(torch.randn(3, W) * 0.02)  # before window / after window / change tokens
        self.blocks = nn.ModuleList(blocks)
        self.head = init_head(nn.Linear(W, cfg.embed_dim))

    @property
    def width(self) -> int:
        return self.visual_ln.normalized_shape[0]

    def forward(
        self,
        visual: torch.Tensor,
        query_ids: torch.Tensor,
        query_mask: torch.Tensor,
        before_visual: torch.Tensor | None = None,
        tokens_per_frame: int | None = None,
    ) -> torch.Tensor:
        # visual (B,Nv,W); query_ids/query_mask (B,Lq); before_visual (B,Nb,W) or None -> (B,D) unit norm
        if before_visual is not None:
            # Change tokens (newest after-frame minus newest before-frame, position by
            # position) make "what changed, and where" explicit: with two layers
            # and a mean pool, comparing the two windows by attention alone was not
            # learned (action top-1 stayed near chance even on training pairs).
            n = tokens_per_frame or min(visual.shape[1], before_visual.shape[1])
            change = visual[:, -n:] - before_visual[:, -n:]  # (B,n,W)
            visual = torch.cat([before_visual + self.segment[0], visual + self.segment[1],
                                change + self.segment[2]], dim=1)
        v = self.visual_ln(visual)
        with torch.no_grad():
            q = self.text_embeddings(query_ids)  # (B,Lq,W) frozen
        x = torch.cat([v, q], dim=1)  # (B,Nv+Lq,W)
        mask = torch.cat([torch.ones(v.shape[:2], dtype=torch.bool, device=v.device), query_mask.bool()], dim=1)
        for block in self.blocks:
            x = block(x, mask)
        pooled = masked_mean(x, mask)  # (B,W)
        return F.normalize(self.head(pooled), dim=-1)
