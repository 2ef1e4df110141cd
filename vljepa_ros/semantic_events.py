"""Semantic events from an embedding stream, ROS-free: what decoder_node runs.

    embeddings --SelectiveDecoder--> trigger? --Y-decoder--> text --> SemanticEvent fields

Only a trigger calls the Y-decoder (the expensive step); everything else is a
dot product. Action estimates that perception publishes on a state change are
kept for a short time and attached to the event whose state began near them.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch

from .checkpoint import Checkpoint
from .models.y_decoder import Decoded, RetrievalDecoder
from .models.y_encoder import PhraseBank
from .selective_decoding import SelectiveDecoder, SelectiveDecoderConfig, Trigger

DECODE_MODES = ("generative", "retrieval")


@dataclass
class Event:
    kind: str                 # "initial" | "change" | "heartbeat"
    state_start_s: float
    previous_start_s: float | None
    decided_at_s: float       # stream time of the frame that triggered the decode
    text: str
    previous_text: str
    change_score: float
    confidence: float
    action: str
    action_confidence: float
    embedding: np.ndarray     # (D,) the decoded segment embedding


@dataclass
class _ActionNote:
    after_s: float
    before_s: float
    action: str
    confidence: float


class SemanticEventDecoder:
    def __init__(self, checkpoint: Checkpoint, mode: str = "generative",
                 config: SelectiveDecoderConfig | None = None, text_bank: list[str] | None = None,
                 action_match_s: float = 2.0):
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode must be one of {DECODE_MODES}, got {mode!r}")
        if mode == "generative" and checkpoint.decoder is None:
            raise ValueError(f"checkpoint {checkpoint.model_id} has no generative decoder; use mode 'retrieval'")
        self.checkpoint = checkpoint
        self.mode = mode
        self.selective = SelectiveDecoder(config or SelectiveDecoderConfig())
        self.action_match_s = action_match_s
        model = checkpoint.model
        self._bank = PhraseBank(model.y_encoder, text_bank or checkpoint.phrase_banks.get("state", []))
        self._retrieval = RetrievalDecoder(self._bank, model.temperature.detach())
        self._actions: deque[_ActionNote] = deque(maxlen=32)
        self.current_text = ""
        self.jump_back_reset_s = 1.0
        self._last_stamp: float | None = None
        self.decodes = 0
        self.decode_ms_total = 0.0

    # ---- configuration -----------------------------------------------------------
    @property
    def config(self) -> SelectiveDecoderConfig:
        return self.selective.config

    def set_config(self, config: SelectiveDecoderConfig) -> None:
        self.selective.config = config

    def set_mode(self, mode: str) -> None:
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode must be one of {DECODE_MODES}")
        if mode == "generative" and self.checkpoint.decoder is None:
            raise ValueError("this checkpoint has no generative decoder")
        self.mode = mode

    def set_text_bank(self, texts: list[str]) -> None:
        self._bank.texts = texts or self.checkpoint.phrase_banks.get("state", [])

    # ---- stream ------------------------------------------------------------------
    def note_action(self, before_s: float, after_s: float, action: str, confidence: float) -> None:
        self._actions.append(_ActionNote(after_s, before_s, action, confidence))

    def _action_for(self, previous_start_s: float | None, state_start_s: float, decided_at_s: float):
        """The action estimate for the transition that began at state_start_s: its
        'after' window lies between the previous state's start and the decision."""
        lo = (previous_start_s if previous_start_s is not None else state_start_s)
        best = None
        for note in self._actions:
            if lo < note.after_s <= decided_at_s + self.action_match_s and note.after_s >= state_start_s - self.action_match_s:
                if best is None or abs(note.after_s - state_start_s) < abs(best.after_s - state_start_s):
                    best = note
        return best

    @torch.no_grad()
    def decode(self, embedding: np.ndarray) -> tuple[Decoded, float]:
        """Text for one embedding and the decode time in ms (counted as a decode)."""
        t0 = time.perf_counter()
        e = torch.from_numpy(np.asarray(embedding, dtype=np.float32))[None]
        if self.mode == "generative":
            decoded = self.checkpoint.decoder.decode(e)[0]
            # Confidence: how well the text re-encodes to the embedding it came from.
            back = self.checkpoint.model.encode_text([decoded.text])[0]
            decoded = Decoded(decoded.text, float(max(0.0, min(1.0, float(back @ e[0])))))
        else:
            decoded = self._retrieval.decode(e)[0]
        ms = (time.perf_counter() - t0) * 1e3
        self.decodes += 1
        self.decode_ms_total += ms
        return decoded, ms

    def update(self, stamp_s: float, embedding: np.ndarray) -> Event | None:
        if self._last_stamp is not None and stamp_s < self._last_stamp - self.jump_back_reset_s:
            self.reset()  # time went back (a looped bag, a restarted simulation): a new stream
        self._last_stamp = stamp_s if self._last_stamp is None else max(self._last_stamp, stamp_s)
        trigger: Trigger | None = self.selective.update(stamp_s, embedding)
        if trigger is None:
            return None
        decoded, _ = self.decode(trigger.decode_embedding)
        previous_text = "" if trigger.kind == "initial" else self.current_text
        note = None if trigger.kind != "change" else self._action_for(
            trigger.previous_start_s, trigger.state_start_s, trigger.stamp_s)
        if note is not None:
            self._actions.remove(note)
        self.current_text = decoded.text
        return Event(
            kind=trigger.kind, state_start_s=trigger.state_start_s, previous_start_s=trigger.previous_start_s,
            decided_at_s=trigger.stamp_s, text=decoded.text, previous_text=previous_text,
            change_score=float(trigger.change_score), confidence=float(decoded.confidence),
            action=note.action if note else "", action_confidence=note.confidence if note else 0.0,
            embedding=np.asarray(trigger.decode_embedding, dtype=np.float32),
        )

    def counters(self) -> dict:
        c = self.selective.counters()
        return {**c, "decodes": self.decodes,
                "mean_decode_ms": self.decode_ms_total / self.decodes if self.decodes else 0.0}

    def reset(self) -> None:
        self.selective.reset()
        self._actions.clear()
        self.current_text = ""
        self._last_stamp = None
