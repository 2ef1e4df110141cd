"""The perception pipeline behind perception_node, ROS-free.

Per camera frame: backbone once (cached), then, for the sliding window of the
newest frames, the predicted state embedding, the ranked state phrases and,
when the scene has changed and settled again, the action that linked the state
before to the state after (WorldPrediction-style).

The change is found by the same detector decoder_node uses for its events
(:class:`ChangeDetector` on the state embedding, decoding nothing), with the
same parameters, so each change event on /semantic_events has an action
estimate decided on the same frame: "before" is the last window that ended
``before_margin_s`` ahead of the change's detection (an arm starts moving a
few tenths of a second before the embedding crosses the threshold), "after"
the settled window the event is decoded from. (The first design debounced
the top-1 retrieved state instead; on unseen camera poses the top-1 flickers
between near neighbours, which fired action estimates at the wrong moments
and compared windows of the same state; docs/design.md.)
The node only converts messages and publishes what this returns.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .change_detection import ChangeDetector, ChangeDetectorConfig, jumped_back
from .state_reading import actions_linking
from .world_types import QueryTemplates, Ranked, Reading, Window

ACTION_OUTCOME_WEIGHT_MAX = 10.0


class NonFiniteOutput(ValueError):
    """The model's output holds NaN or inf (weights gone bad, an extreme
    input): it is not published, nor fed to the change detector."""


def finite(ranked: Ranked, what: str) -> Ranked:
    """``ranked`` itself, or NonFiniteOutput naming ``what``."""
    values = np.concatenate([np.asarray(ranked.scores, dtype=np.float64).ravel(),
                             np.asarray(ranked.probabilities, dtype=np.float64).ravel(),
                             np.asarray(ranked.embedding, dtype=np.float64).ravel()])
    if not np.all(np.isfinite(values)):
        raise NonFiniteOutput(f"{what}: the model's output contains NaN or inf ({int(np.sum(~np.isfinite(values)))} "
                              f"of {values.size} values); not published")
    return ranked


@dataclass
class RequestLimits:
    """What one ~/ask or ~/predict_outcome request may hold: every text is
    encoded (and cached), so the size of a request is bounded."""
    max_texts: int = 256         # candidates (or actions) per request
    max_chars: int = 1000        # characters per question, action or candidate

    def texts_problem(self, texts: list[str], kind: str) -> str | None:
        if len(texts) > self.max_texts:
            return f"{len(texts)} {kind} given; at most ask_max_candidates={self.max_texts}"
        longest = max((len(t) for t in texts), default=0)
        if longest > self.max_chars:
            return f"a text of {longest} characters; at most max_text_chars={self.max_chars}"
        return None

    def ask_problem(self, question: str, candidates: list[str]) -> str | None:
        """Why an ~/ask request is refused (None: it is fine)."""
        if not question.strip():
            return "question is empty"
        if not candidates or any(not c.strip() for c in candidates):
            return "give at least one candidate answer; none may be empty"
        return self.texts_problem(candidates, "candidates") or self.texts_problem([question], "questions")

    def outcome_problem(self, action: str, candidates: list[str]) -> str | None:
        """Why a ~/predict_outcome request is refused (no candidates = the state bank)."""
        if not action.strip():
            return "action is empty"
        if any(not c.strip() for c in candidates):
            return "candidates must be non-empty strings"
        return self.texts_problem(candidates, "candidates") or self.texts_problem([action], "actions")


@dataclass
class PerceptionConfig:
    window_frames: int = 0            # 0 = the model's window size
    world_state_top_k: int = 3
    action_top_k: int = 3
    # the change detector of the action estimates: keep it equal to decoder_node's
    change: ChangeDetectorConfig = field(default_factory=ChangeDetectorConfig)
    before_margin_s: float = 0.4      # the "before" window ends this long before the change was detected
    # weight of the world model's check in the action estimate (WorldModel.action_between; chosen on val)
    action_outcome_weight: float = 0.0       # off: +0.02 test accuracy for ~1.2 s per change (docs/model_card.md)
    # on each trigger of the change detector, read the state fact by fact and
    # vote with the state query over the state bank (WorldModel.read_state,
    # 14 queries in one pass): the text decoder_node
    # writes and the action estimate's states (docs/model_card.md, "reading")
    read_state: bool = True
    # ~/action: the actions that link the state read before to the state read
    # after (state_reading.actions_linking) rank first (needs read_state)
    action_from_readings: bool = True
    threads: int = 1                  # torch intra-op threads; 1 keeps up best on a shared CPU (docs/design.md)

    def validate(self, model_window: int) -> None:
        if not 0 <= self.window_frames <= model_window:
            raise ValueError(f"window_frames must be in [0, {model_window}] (0 = the model's {model_window})")
        if self.world_state_top_k < 1 or self.action_top_k < 1:
            raise ValueError("top_k values must be >= 1")
        if not 0.0 <= self.before_margin_s <= 5.0:
            raise ValueError("before_margin_s must be in [0, 5] seconds")
        if not 0.0 <= self.action_outcome_weight <= ACTION_OUTCOME_WEIGHT_MAX:
            raise ValueError(f"action_outcome_weight must be in [0, {ACTION_OUTCOME_WEIGHT_MAX:g}]")


@dataclass
class ActionResult:
    before_stamp: float
    after_stamp: float
    before_state: str
    after_state: str
    ranked: Ranked


@dataclass
class FrameResult:
    stamp: float                      # newest frame of the window (seconds)
    window_start: float               # oldest frame of the window
    window_frames: int
    embedding: np.ndarray             # (D,) float32, unit norm (state query)
    state: Ranked
    action: ActionResult | None
    reading: Reading | None = None    # the state read fact by fact, on a trigger of the change detector
    timings_ms: dict = field(default_factory=dict)  # backbone, predictor, ranking


class PerceptionPipeline:
    def __init__(self, checkpoint, config: PerceptionConfig | None = None,
                 state_bank: list[str] | None = None, action_bank: list[str] | None = None,
                 queries: QueryTemplates | None = None):
        self.checkpoint = checkpoint
        self.config = config or PerceptionConfig()
        model_window = checkpoint.model.cfg.x_encoder.window_frames
        self.config.validate(model_window)
        banks = checkpoint.phrase_banks
        queries = queries or QueryTemplates(**{k: v for k, v in checkpoint.queries.items()
                                               if k in ("state", "action", "outcome")})
        world_args = (state_bank or banks.get("state", []), action_bank or banks.get("action", []), queries,
                      self.config.window_frames or model_window)
        make_world = getattr(checkpoint, "world_model", None)
        if make_world is not None:
            # an ONNX backend (runtime.OnnxCheckpoint): torch-free; its threads
            # were set when its graphs were loaded
            self.world = make_world(*world_args)
        else:  # the torch model (checkpoint.Checkpoint)
            import torch

            from .world_model import WorldModel

            torch.set_num_threads(self.config.threads)
            self.world = WorldModel(checkpoint.model, *world_args)
        # One lock: the frame loop and service calls share the model and its cache.
        self.lock = threading.RLock()
        # (window, top-1 state) of recent frames while the scene was stable: the
        # candidates for a change's "before" window (a few seconds at 30 Hz)
        self._stable_windows: deque[tuple[Window, str]] = deque(maxlen=96)
        self._before: tuple[Window, str] | None = None  # chosen when a change begins
        self._reading: Reading | None = None  # the latest reading (the state before the next change)
        self._restart_change_tracking()

    @property
    def model_id(self) -> str:
        return self.checkpoint.model_id

    def reset(self) -> None:
        """Forget the stream (e.g. after a jump back in time on bag replay)."""
        with self.lock:
            self.world.clear_stream()
            self._restart_change_tracking()

    def _restart_change_tracking(self) -> None:
        self._changes = ChangeDetector(self.config.change)
        self._stable_windows.clear()
        self._before = None
        self._reading = None

    def warm_up(self) -> float:
        """Run one blank frame through every path a frame can take (backbone,
        predictor, both phrase banks, the action head), then forget it. Call
        before the first camera frame: otherwise the first frame pays ~2 s of
        lazy set-up and a live stream loses its first seconds. Returns ms."""
        with self.lock:
            t0 = time.perf_counter()
            size = self.checkpoint.model.cfg.x_encoder.image_size
            self.process(np.zeros((size, size, 3), np.uint8), 0.0)  # encodes the state bank
            window = self.world.window()
            self.world.action_between(window, window, outcome_weight=self.config.action_outcome_weight)  # + the bank
            if self.config.read_state:
                self.world.read_state(window)  # + the answer banks
            self.reset()
            return (time.perf_counter() - t0) * 1e3

    def set_change_config(self, config: ChangeDetectorConfig) -> None:
        """New change-detector parameters (keep them equal to decoder_node's)."""
        with self.lock:
            self.config.change = config
            self._changes.config = config

    def process(self, rgb: np.ndarray, stamp: float) -> FrameResult | None:
        """One camera frame -> results for the window ending at it (None if the
        stamp is not newer than the last frame). A jump back in time larger
        than JUMP_BACK_RESET_S (a bag played again) restarts the stream."""
        with self.lock:
            t0 = time.perf_counter()
            stamps = self.world.cache.stamps
            if stamps and stamp <= stamps[-1]:
                if not jumped_back(stamp, stamps[-1]):
                    return None
                self.reset()
            self.world.push_frame(rgb, stamp)
            t1 = time.perf_counter()
            window = self.world.window()
            state = finite(self.world.state(self.config.world_state_top_k, window), "state")  # one predictor pass
            t2 = time.perf_counter()
            action, reading = self._track_change(state, window)
            t3 = time.perf_counter()
            return FrameResult(
                stamp=window.stamps[-1], window_start=window.stamps[0], window_frames=len(window.stamps),
                embedding=np.asarray(state.embedding, dtype=np.float32).copy(), state=state, action=action,
                reading=reading,
                timings_ms={"backbone": (t1 - t0) * 1e3, "predictor": (t2 - t1) * 1e3, "action": (t3 - t2) * 1e3},
            )

    def _track_change(self, state: Ranked, window: Window) -> tuple[ActionResult | None, Reading | None]:
        """Feed the change detector; on a trigger read the state (``read_state``),
        and when a change has settled, which action linked the window before it
        to the window now."""
        top = state.top if state.labels else ""
        trigger = self._changes.update(window.stamps[-1], np.asarray(state.embedding))
        phase = self._changes.phase
        if phase == "changing" and self._before is None:
            # a change began at change_start_s: pick the last stable window well before it
            limit = self._changes.change_start_s - self.config.before_margin_s
            fits = [w for w in self._stable_windows if w[0].stamps[-1] <= limit]
            self._before = fits[-1] if fits else (self._stable_windows[0] if self._stable_windows else None)
        elif phase == "stable" and trigger is None and self._before is not None:
            self._before = None  # the change was cancelled (a glitch)
        previous = self._reading
        reading = self._reading = self.world.read_state(window) if trigger and self.config.read_state else previous
        after_state = reading.caption if reading is not None else top
        if trigger is None or trigger.kind != "change":
            if phase == "stable" or trigger is not None:
                self._stable_windows.append((window, after_state))
            return None, reading if trigger else None
        before = self._before
        self._before = None
        self._stable_windows.clear()
        self._stable_windows.append((window, after_state))
        if before is None:
            return None, reading
        before_window, before_state = before
        linking = (actions_linking(previous.state, reading.state)
                   if self.config.action_from_readings and previous is not None and reading is not previous else ())
        ranked = finite(self.world.action_between(before_window, window,
                                                  outcome_weight=self.config.action_outcome_weight, prefer=linking),
                        "action")
        ranked = Ranked(ranked.labels[: self.config.action_top_k], ranked.scores[: self.config.action_top_k],
                        ranked.probabilities[: self.config.action_top_k], ranked.embedding)
        before_state = previous.caption if previous is not None else before_state
        return ActionResult(before_window.stamps[-1], window.stamps[-1], before_state, after_state, ranked), reading

    # ---- services --------------------------------------------------------------
    def predict_outcome(self, action: str, candidates: list[str] | None = None) -> tuple[Ranked, float]:
        with self.lock:
            window = self.world.window()
            return finite(self.world.predict_outcome(action, candidates or None, window), "outcome"), \
                window.stamps[-1]

    def ask(self, question: str, candidates: list[str]) -> tuple[Ranked, float]:
        with self.lock:
            window = self.world.window()
            return finite(self.world.ask(question, candidates, window), "answer"), window.stamps[-1]

    def encode_texts_unlocked(self, texts: list[str]) -> None:
        """Run the Y-encoder's frozen trunk over ``texts`` into its per-text
        cache, without the pipeline's lock: the frame worker keeps going
        meanwhile, and encoding a bank under the lock is then only the linear
        head. The caller keeps two of these from running at once."""
        y = getattr(getattr(self.world, "model", None), "y_encoder", None)
        if y is None or not getattr(y, "trunk_frozen", False):
            return  # another backend, or a trainable trunk: set_banks encodes it all
        for i in range(0, len(texts), 256):
            y.trunk_outputs(list(texts[i:i + 256]))

    def bound_text_cache(self, megabytes: float) -> None:
        """Cap the Y-encoder's per-text cache (model default: 500,000 texts,
        about 800 MB; ~/ask with 200 new candidates per call took
        perception_node from 684 to 2,630 MB) to ``megabytes``: entries x
        (one float32 vector + the text)."""
        y = getattr(getattr(self.world, "model", None), "y_encoder", None)
        if y is None or not hasattr(y, "trunk_cache_size"):
            return  # another backend: no such cache
        per_entry = y.head.in_features * 4 + 200  # the vector + the key string and dict slot (~100 characters)
        y.trunk_cache_size = max(1, int(megabytes * 2**20 / per_entry))

    def has_frames(self) -> bool:
        return len(self.world.cache) > 0

    def set_banks(self, state_bank: list[str] | None = None, action_bank: list[str] | None = None) -> None:
        with self.lock:
            if state_bank is not None:
                self.world.set_state_bank(state_bank or self.checkpoint.phrase_banks.get("state", []))
            if action_bank is not None:
                self.world.set_action_bank(action_bank or self.checkpoint.phrase_banks.get("action", []))

    def set_state_query(self, query: str) -> None:
        with self.lock:
            self.world.queries.state = query
            # embeddings of another query are not comparable: the change detector starts over
            self._restart_change_tracking()
