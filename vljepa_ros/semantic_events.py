"""Semantic events from an embedding stream, ROS-free: what decoder_node runs.

    embeddings --ChangeDetector--> trigger? --Y-decoder--> text --> SemanticEvent fields

Only a trigger calls the Y-decoder (the expensive step); everything else is a
dot product. perception_node runs the same change detector and, on the frame
it triggers, reads the state fact by fact (``WorldModel.read_state``) and
publishes that reading (its caption, confidence and embedding); on a change it
also publishes an action estimate. Both are kept for a short time and attached
to the event they belong to: the event SAYS the reading (the state composed
from facts, right also on colour-shape pairs the state query never saw; no
Y-decoder call) instead of decoding the stream's own embeddings, and carries
the action. They travel on other topics than the embedding stream, so either
may arrive first: an event waits up to ``action_wait_s`` of stream time for
what it expects (one or two frames in practice) and is then released with
what it has (the stream's settled mean is decoded when no reading came).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from .change_detection import ChangeDetector, ChangeDetectorConfig, Trigger, jumped_back
from .world_types import Decoded

DECODE_MODES = ("generative", "retrieval")


@dataclass
class StreamEvent:
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


@dataclass
class _ReadingNote:
    after_s: float            # stamp of the window the state was read on
    text: str                 # the read state's caption
    confidence: float
    embedding: np.ndarray     # (D,) the caption's embedding


class EventStream:
    """The embedding stream -> semantic events (see the module docstring):
    a ChangeDetector, the readings and actions noted for its triggers, and the
    Y-decoder for the triggers without a reading. decoder_node runs one."""

    def __init__(self, checkpoint, mode: str = "generative",
                 config: ChangeDetectorConfig | None = None, text_bank: list[str] | None = None,
                 action_match_s: float = 2.0, action_wait_s: float = 0.3, expect_actions: bool = False,
                 expect_readings: bool = False):
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
        self._pending: tuple[Trigger, str] | None = None  # (trigger, previous text) waiting, not decoded yet
        self.waiting_since: float | None = None  # monotonic wall time the wait began
        # Waiting only makes sense when notes come: the caller says so
        # (decoder_node: perception's ~/action or ~/state_reading has a
        # publisher), or one arrived.
        self.expect_actions = expect_actions
        self.expect_readings = expect_readings
        self._actions_seen = self._readings_seen = False
        self._actions: deque[_ActionNote] = deque(maxlen=32)
        self._readings: deque[_ReadingNote] = deque(maxlen=32)
        self.current_text = ""
        self._last_stamp: float | None = None
        self.decodes = 0          # Y-decoder calls
        self.texts_read = 0       # events that said perception's reading instead
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
    def note_action(self, before_s: float, after_s: float, action: str, confidence: float) -> list[StreamEvent]:
        """Keep an action estimate; returns the waiting change event it completes, if any."""
        self._actions_seen = True
        self._actions.append(_ActionNote(after_s, before_s, action, confidence))
        return self._complete_pending()

    def note_reading(self, stamp_s: float, text: str, confidence: float, embedding: np.ndarray) -> list[StreamEvent]:
        """Keep a state reading; returns the waiting event it completes, if any."""
        self._readings_seen = True
        self._readings.append(_ReadingNote(stamp_s, text, confidence, np.asarray(embedding, dtype=np.float32)))
        return self._complete_pending()

    def _complete_pending(self, force: bool = False) -> list[StreamEvent]:
        """The waiting event, decoded, once what it waits for is here (or ``force``)."""
        if self._pending is None:
            return []
        trigger, previous_text = self._pending
        waits = self.action_wait_s > 0.0
        action = self._note_for(self._actions, trigger) if trigger.kind == "change" else None
        reading = self._note_for(self._readings, trigger)
        want_action = trigger.kind == "change" and waits and (self.expect_actions or self._actions_seen)
        want_reading = waits and (self.expect_readings or self._readings_seen)
        if not force and ((want_action and action is None) or (want_reading and reading is None)):
            return []
        self._pending = self.waiting_since = None
        for notes, note in ((self._actions, action), (self._readings, reading)):
            if note is not None:
                notes.remove(note)
        if reading is not None:  # the text is known: what was read
            embedding, decoded = reading.embedding, Decoded(reading.text, reading.confidence)
            self.texts_read += 1
        else:
            embedding = np.asarray(trigger.decode_embedding, np.float32)
            decoded, _ = self.decode(embedding)
        self.current_text = decoded.text
        return [StreamEvent(
            kind=trigger.kind, state_start_s=trigger.state_start_s, previous_start_s=trigger.previous_start_s,
            decided_at_s=trigger.stamp_s, text=decoded.text, previous_text=previous_text,
            change_score=float(trigger.change_score), confidence=float(decoded.confidence),
            action=action.action if action else "", action_confidence=action.confidence if action else 0.0,
            embedding=embedding,
        )]

    def flush(self) -> list[StreamEvent]:
        """Release the event still waiting for its notes (e.g. at shutdown, or a new trigger)."""
        return self._complete_pending(force=True)

    def _note_for(self, notes: deque, trigger: Trigger):
        """The note (action estimate or reading) for the trigger that began at
        state_start_s and was decided at its stamp. perception_node makes both
        on the frame its copy of the change detector decides, so their stamp
        normally equals the trigger's; the closest within action_match_s wins.
        A note whose window ends before the change began belongs to an earlier one."""
        best = None
        for note in notes:
            if note.after_s >= trigger.state_start_s and abs(note.after_s - trigger.stamp_s) <= self.action_match_s:
                if best is None or abs(note.after_s - trigger.stamp_s) < abs(best.after_s - trigger.stamp_s):
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

    def update(self, stamp_s: float, embedding: np.ndarray) -> list[StreamEvent]:
        """One embedding of the stream -> the events ready now (usually none)."""
        ready: list[StreamEvent] = []
        if jumped_back(stamp_s, self._last_stamp):
            ready += self.flush()
            self.reset()  # time went back (a looped bag, a restarted simulation): a new stream
        self._last_stamp = stamp_s if self._last_stamp is None else max(self._last_stamp, stamp_s)
        if self._pending is not None and stamp_s > self._pending[0].stamp_s + self.action_wait_s:
            ready += self.flush()  # what it waited for did not come: released without
        trigger: Trigger | None = self.changes.update(stamp_s, embedding)
        if trigger is None:
            return ready
        ready += self.flush()  # a new trigger supersedes any wait
        self._pending = (trigger, "" if trigger.kind == "initial" else self.current_text)
        self.waiting_since = time.monotonic()
        return ready + self._complete_pending()

    def counters(self) -> dict:
        c = self.changes.counters()
        return {**c, "decodes": self.decodes, "texts_read": self.texts_read,
                "mean_decode_ms": self.decode_ms_total / self.decodes if self.decodes else 0.0}

    def reset(self) -> None:
        self.changes.reset()
        self._actions.clear()
        self._readings.clear()
        self._pending = self.waiting_since = None
        self.current_text = ""
        self._last_stamp = None
