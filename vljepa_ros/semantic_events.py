"""Semantic events from an embedding stream, ROS-free: what decoder_node runs.

    embeddings --ChangeDetector--> trigger? --Y-decoder--> text --> SemanticEvent fields

Only a trigger calls the Y-decoder (the expensive step); everything else is a
dot product. perception_node runs the same change detector and publishes an
action estimate on the frame a change settles; estimates are kept for a short
time and attached to the change event they belong to. The estimate and the
embedding of that frame travel on two topics, so either may arrive first: a
change event without its estimate waits up to ``action_wait_s`` of stream time
for it (one or two frames in practice) and is then released with or without.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, replace

import numpy as np

from .change_detection import ChangeDetector, ChangeDetectorConfig, Trigger
from .world_types import Decoded

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


class TorchText:
    """The Y-encoder and Y-decoders of a torch checkpoint, on arrays. An ONNX
    checkpoint brings its own (``OnnxCheckpoint.text_ops``, no torch)."""

    def __init__(self, checkpoint, bank: list[str]):
        from .models.y_decoder import RetrievalDecoder
        from .models.y_encoder import PhraseBank

        self.checkpoint = checkpoint
        self.bank = PhraseBank(checkpoint.model.y_encoder, bank)
        self._retrieval = RetrievalDecoder(self.bank, checkpoint.model.temperature.detach())

    @property
    def has_generative(self) -> bool:
        return self.checkpoint.decoder is not None

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.checkpoint.model.encode_text(list(texts)).numpy()  # (B,D)

    def generate(self, embedding: np.ndarray) -> str:
        import torch

        return self.checkpoint.decoder.decode(torch.from_numpy(embedding)[None])[0].text

    def retrieve(self, embedding: np.ndarray) -> Decoded:
        import torch

        return self._retrieval.decode(torch.from_numpy(embedding)[None])[0]

    def encode_bank(self) -> None:
        _ = self.bank.embeddings


@dataclass
class _ActionNote:
    after_s: float
    before_s: float
    action: str
    confidence: float


class SemanticEventDecoder:
    def __init__(self, checkpoint, mode: str = "generative",
                 config: ChangeDetectorConfig | None = None, text_bank: list[str] | None = None,
                 action_match_s: float = 2.0, action_wait_s: float = 0.3, expect_actions: bool = False):
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode must be one of {DECODE_MODES}, got {mode!r}")
        # a torch Checkpoint, or an ONNX one (runtime.OnnxCheckpoint) with its own text_ops
        bank = text_bank or checkpoint.phrase_banks.get("state", [])
        make_text = getattr(checkpoint, "text_ops", None)
        self.text = make_text(bank) if make_text is not None else TorchText(checkpoint, bank)
        if mode == "generative" and not self.text.has_generative:
            raise ValueError(f"checkpoint {checkpoint.model_id} has no generative decoder; use mode 'retrieval'")
        self.checkpoint = checkpoint
        self.mode = mode
        self.changes = ChangeDetector(config or ChangeDetectorConfig())
        self.action_match_s = action_match_s
        self.action_wait_s = action_wait_s
        self._pending: Event | None = None   # a change event waiting for its action estimate
        self.waiting_since: float | None = None  # monotonic wall time the wait began
        # Waiting only makes sense when estimates come: the caller says so
        # (decoder_node: perception's ~/action has a publisher), or one arrived.
        self.expect_actions = expect_actions
        self._actions_seen = False
        self._actions: deque[_ActionNote] = deque(maxlen=32)
        self.current_text = ""
        self.jump_back_reset_s = 1.0
        self._last_stamp: float | None = None
        self.decodes = 0
        self.decode_ms_total = 0.0

    # ---- configuration -----------------------------------------------------------
    @property
    def config(self) -> ChangeDetectorConfig:
        return self.changes.config

    def set_config(self, config: ChangeDetectorConfig) -> None:
        self.changes.config = config

    def set_mode(self, mode: str) -> None:
        if mode not in DECODE_MODES:
            raise ValueError(f"decode mode must be one of {DECODE_MODES}")
        if mode == "generative" and not self.text.has_generative:
            raise ValueError("this checkpoint has no generative decoder")
        self.mode = mode
        if mode == "retrieval":
            self.text.encode_bank()  # encode now, not on the next event

    def set_text_bank(self, texts: list[str]) -> None:
        self.text.bank.texts = texts or self.checkpoint.phrase_banks.get("state", [])
        self.text.encode_bank()  # encode now, not on the next event

    def warm_up(self) -> float:
        """Decode once in the current mode (retrieval encodes its phrase bank,
        ~2 s for the default bank), so the first event does not pay the lazy
        set-up. Not counted as a decode. Returns ms."""
        t0 = time.perf_counter()
        embedding = self.text.encode(self.text.bank.texts[:1])[0]
        self.decode(embedding)  # retrieval mode encodes its bank here
        self.decodes, self.decode_ms_total = 0, 0.0
        return (time.perf_counter() - t0) * 1e3

    # ---- stream ------------------------------------------------------------------
    def note_action(self, before_s: float, after_s: float, action: str, confidence: float) -> list[Event]:
        """Keep an action estimate; returns the waiting change event it completes, if any."""
        self._actions_seen = True
        self._actions.append(_ActionNote(after_s, before_s, action, confidence))
        if self._pending is None:
            return []
        return self._complete_pending()

    def _complete_pending(self) -> list[Event]:
        event = self._pending
        note = self._action_for(event.state_start_s, event.decided_at_s)
        if note is None:
            return []
        self._actions.remove(note)
        self._pending = self.waiting_since = None
        return [replace(event, action=note.action, action_confidence=note.confidence)]

    def flush(self) -> list[Event]:
        """Release a change event still waiting for its action estimate (e.g. at shutdown)."""
        event, self._pending, self.waiting_since = self._pending, None, None
        return [event] if event is not None else []

    def _action_for(self, state_start_s: float, decided_at_s: float) -> _ActionNote | None:
        """The estimate for the change that began at state_start_s and was decided
        at decided_at_s. perception_node estimates on the frame its copy of the
        change detector decides, so the 'after' stamp normally equals
        decided_at_s; the closest within action_match_s wins. An estimate whose
        'after' window ends before this change began belongs to an earlier one."""
        best = None
        for note in self._actions:
            if note.after_s >= state_start_s and abs(note.after_s - decided_at_s) <= self.action_match_s:
                if best is None or abs(note.after_s - decided_at_s) < abs(best.after_s - decided_at_s):
                    best = note
        return best

    def decode(self, embedding: np.ndarray) -> tuple[Decoded, float]:
        """Text for one embedding and the decode time in ms (counted as a decode)."""
        t0 = time.perf_counter()
        e = np.array(embedding, dtype=np.float32)  # (D,)
        if self.mode == "generative":
            text = self.text.generate(e)
            # Confidence: how well the text re-encodes to the embedding it came from.
            back = self.text.encode([text])[0]
            decoded = Decoded(text, float(max(0.0, min(1.0, float(back @ e)))))
        else:
            decoded = self.text.retrieve(e)
        ms = (time.perf_counter() - t0) * 1e3
        self.decodes += 1
        self.decode_ms_total += ms
        return decoded, ms

    def update(self, stamp_s: float, embedding: np.ndarray) -> list[Event]:
        """One embedding of the stream -> the events ready now (usually none)."""
        ready: list[Event] = []
        if self._last_stamp is not None and stamp_s < self._last_stamp - self.jump_back_reset_s:
            ready += self.flush()
            self.reset()  # time went back (a looped bag, a restarted simulation): a new stream
        self._last_stamp = stamp_s if self._last_stamp is None else max(self._last_stamp, stamp_s)
        if self._pending is not None and stamp_s > self._pending.decided_at_s + self.action_wait_s:
            ready += self.flush()  # its estimate did not come: released without
        trigger: Trigger | None = self.changes.update(stamp_s, embedding)
        if trigger is None:
            return ready
        ready += self.flush()  # a new trigger supersedes any wait
        decoded, _ = self.decode(trigger.decode_embedding)
        previous_text = "" if trigger.kind == "initial" else self.current_text
        self.current_text = decoded.text
        event = Event(
            kind=trigger.kind, state_start_s=trigger.state_start_s, previous_start_s=trigger.previous_start_s,
            decided_at_s=trigger.stamp_s, text=decoded.text, previous_text=previous_text,
            change_score=float(trigger.change_score), confidence=float(decoded.confidence),
            action="", action_confidence=0.0,
            embedding=np.asarray(trigger.decode_embedding, dtype=np.float32),
        )
        if trigger.kind != "change":
            return ready + [event]
        self._pending = event
        self.waiting_since = time.monotonic()
        done = self._complete_pending()
        if done or not (self.expect_actions or self._actions_seen) or self.action_wait_s <= 0.0:
            return ready + (done or self.flush())
        return ready

    def counters(self) -> dict:
        c = self.changes.counters()
        return {**c, "decodes": self.decodes,
                "mean_decode_ms": self.decode_ms_total / self.decodes if self.decodes else 0.0}

    def reset(self) -> None:
        self.changes.reset()
        self._actions.clear()
        self._pending = self.waiting_since = None
        self.current_text = ""
        self._last_stamp = None
