"""The task API on top of VL-JEPA: what ROS nodes and evaluation call (ROS-free).

One predictor answers different questions about the recent frames by changing
the query text; answers are ranked against Y-encoded candidate phrases::

    wm = WorldModel(model, state_bank, action_bank, QueryTemplates(), window_frames=4)
    wm.push_frame(rgb_uint8, stamp_s)      # backbone once per frame, cached
    wm.state(top_k=3)                      # what is the scene state?
    wm.action_between(before, after)       # which action linked two windows?
    wm.predict_outcome("switch the lamp on")
    wm.ask("is the lamp on?", ["yes", "no"])
    wm.read_state()                        # the state composed fact by fact (state_reading.py)
"""

from __future__ import annotations

import numpy as np
import torch

from . import fact_views
from .models.vljepa import VLJEPA
from .models.x_encoder import FrameFeatureCache, pad_window, preprocess_frame
from .models.y_encoder import PhraseBank
from .sim.captions import state_caption
from .state_reading import (
    BankVote,
    answer_probabilities,
    bank_vote,
    compose_state,
    question_fact,
    reading_facts,
    reading_questions,
)
from .world_types import (
    CACHE_FRAMES,
    PHRASE_CACHE_TEXTS,
    PREFERRED_BONUS,
    CandidateCache,
    FrameInputs,
    QueryTemplates,
    Ranked,
    Reading,
    Window,
)

__all__ = ["QueryTemplates", "Ranked", "Reading", "Window", "WorldModel", "outcome_consistency",
           "fact_view_windows", "read_probabilities", "read_states", "reading_pass"]  # the types live in world_types


@torch.no_grad()
def outcome_consistency(model: VLJEPA, before_window: torch.Tensor, after_state: torch.Tensor, actions: list[str],
                        template: str) -> torch.Tensor:
    """(N,) cosine between the outcome the model predicts for doing each action
    from ``before_window`` (1,T,C,g,g) and the state it sees after, ``after_state``
    (D,): the world model's check of an action estimate (the action that would
    have produced what the camera now shows)."""
    windows = before_window.expand(len(actions), *before_window.shape[1:])
    outcomes = model.predict(windows, [template.format(action=a) for a in actions])  # (N,D)
    return outcomes @ after_state


@torch.no_grad()
def reading_pass(model: VLJEPA, windows: torch.Tensor, answers: list[PhraseBank] | None = None,
                 state_query: str | None = None, views: dict[str, torch.Tensor] | None = None
                 ) -> tuple[list[list[dict[str, float]]], np.ndarray | None]:
    """(B,T,C,g,g) windows -> per window the answer distributions of the 13
    reading questions (``state_reading``), each answer ranked among its few
    candidates (softmax at the model's temperature), and, when ``state_query``
    is given, its (B,D) predictions: all in one batched predictor pass.
    ``answers``: the candidates' banks in ``reading_questions()`` order (made
    here if not given). ``views``: fact -> (B,T,C,g,g) windows of the fact views
    (``fact_view_windows``), on which a ``reading_views`` model answers the
    colour and the shape questions."""
    questions = [q for q, _ in reading_questions()] + ([state_query] if state_query else [])
    answers = answers or [PhraseBank(model.y_encoder, a) for _, a in reading_questions()]
    if model.cfg.reading_views and views is None:
        raise ValueError("this model reads colour and shape on fact views: pass views (fact_view_windows)")
    facts = (reading_facts() if model.cfg.reading_views else [None] * (len(questions) - bool(state_query)))
    facts += [None] * bool(state_query)
    B, Q = windows.shape[0], len(questions)
    per_question = torch.stack([windows if f is None else views[f] for f in facts], 1)  # (B,Q,T,C,g,g)
    emb = model.predict(per_question.flatten(0, 1), questions * B).view(B, Q, -1).numpy()  # (B,Q,D)
    answer_emb = [bank.embeddings.numpy() for bank in answers]
    t = float(model.temperature.detach())
    probs = [answer_probabilities(emb[b, :len(answer_emb)], answer_emb, t) for b in range(B)]
    return probs, (emb[:, -1] if state_query else None)


def read_probabilities(model: VLJEPA, windows: torch.Tensor, answers: list[PhraseBank] | None = None,
                       views: dict[str, torch.Tensor] | None = None) -> list[list[dict[str, float]]]:
    """Per window the answer distributions of the 13 reading questions (``reading_pass``)."""
    return reading_pass(model, windows, answers, views=views)[0]


@torch.no_grad()
def fact_view_windows(model: VLJEPA, frames: torch.Tensor, window_frames: int,
                      names: tuple[str, ...] = fact_views.VIEWS) -> dict[str, torch.Tensor]:
    """(B,3,S,S) model inputs of the latest frames -> fact -> (B,T,C,g,g): each
    fact view (``fact_views``) through the backbone, repeated over the window
    as in training (``SplitTasks.view_window``)."""
    out = {}
    for name in names:
        x = torch.stack([torch.from_numpy(fact_views.view(f.numpy(), name)) for f in frames.cpu()])
        feats = model.encode_frames(x.to(model.device))  # (B,C,g,g)
        out[name] = feats[:, None].expand(-1, window_frames, *feats.shape[1:])
    return out


@torch.no_grad()
def read_states(model: VLJEPA, windows: torch.Tensor, answers: list[PhraseBank] | None = None,
                vote: tuple[BankVote, PhraseBank] | None = None, state_query: str = QueryTemplates.state,
                views: dict[str, torch.Tensor] | None = None) -> list[tuple[dict, float]]:
    """Per window the state read and its confidence, as ``WorldModel.read_state``:
    composed fact by fact (``compose_state``), and with ``vote`` = (BankVote of
    a bank, that bank) chosen by the vote of the facts and ``state_query``."""
    probs, query_emb = reading_pass(model, windows, answers, state_query if vote else None, views)
    if vote is None:
        return [compose_state(p) for p in probs]
    voter, bank = vote
    composed = [compose_state(p)[0] for p in probs]
    own = model.encode_text([state_caption(st) for st in composed]).numpy()  # (B,D)
    t = float(model.temperature.detach())
    bank_emb = bank.embeddings.numpy()
    return [voter.choose(p, q, bank_emb, st, e, t) for p, q, st, e in zip(probs, query_emb, composed, own)]


class WorldModel:
    def __init__(
        self,
        model: VLJEPA,
        state_bank: list[str],
        action_bank: list[str],
        queries: QueryTemplates | None = None,
        window_frames: int | None = None,
        cache_frames: int = CACHE_FRAMES,
        model_id: str = "",
    ):
        self.model = model.eval()
        self.model_id = model_id  # from the checkpoint; tags every output downstream
        self.queries = queries or QueryTemplates()
        T = model.cfg.x_encoder.window_frames
        self.window_frames = window_frames or T
        if not 1 <= self.window_frames <= T:
            raise ValueError(f"window_frames must be in [1, {T}] for this model")
        self.cache = FrameFeatureCache(max(cache_frames, self.window_frames))
        self._state_bank = PhraseBank(model.y_encoder, state_bank)
        self._action_bank = PhraseBank(model.y_encoder, action_bank)
        self._phrase_cache = CandidateCache(PHRASE_CACHE_TEXTS)  # callers' encoded candidate lists
        self._reading = [PhraseBank(model.y_encoder, answers) for _, answers in reading_questions()]
        self._read_captions = CandidateCache(4096)  # composed captions -> their Y-encoder embedding
        # a reading_views model re-views the latest frame at a reading: its input is kept (float32)
        self._inputs = FrameInputs(self.cache.capacity) if model.cfg.reading_views else None

    # ---- banks ----------------------------------------------------------------
    @property
    def state_bank(self) -> list[str]:
        return self._state_bank.texts

    @property
    def action_bank(self) -> list[str]:
        return self._action_bank.texts

    def set_state_bank(self, texts: list[str]) -> None:
        self._state_bank.texts = texts
        _ = self._state_bank.embeddings  # encode now, not on the next frame
        bank_vote(tuple(self._state_bank.texts))  # parsed now, not on the next change

    def set_action_bank(self, texts: list[str]) -> None:
        self._action_bank.texts = texts
        _ = self._action_bank.embeddings

    # ---- stream ---------------------------------------------------------------
    @torch.no_grad()
    def push_frame(self, image_rgb_uint8: np.ndarray, stamp_s: float) -> None:
        """Encode one camera frame (backbone runs once) and cache its features."""
        x = preprocess_frame(image_rgb_uint8, self.model.cfg.x_encoder.image_size)
        pushed = self.cache.push(stamp_s, self.model.encode_frames(x[None].to(self.model.device))[0])
        if pushed and self._inputs is not None:
            self._inputs.push(stamp_s, x)  # float32, as training and evaluation view it

    def clear_stream(self) -> None:
        """Forget the stream's frames (features and kept inputs)."""
        self.cache.clear()
        if self._inputs is not None:
            self._inputs.clear()

    def window(self, until_s: float | None = None) -> Window:
        """The last ``window_frames`` cached frames (at or before ``until_s``);
        at a stream's start the oldest repeats (``pad_window``, as in training)."""
        feats, stamps = self.cache.latest(self.window_frames, until_s)
        return Window(pad_window(feats, self.window_frames), tuple(stamps))

    # ---- queries --------------------------------------------------------------
    def _features(self, window: Window | torch.Tensor | None) -> torch.Tensor:
        if window is None:
            window = self.window()
        f = window.features if isinstance(window, Window) else window
        return f[None] if f.ndim == 4 else f  # (1,T,C,g,g)

    @torch.no_grad()
    def embed(self, query: str, window: Window | torch.Tensor | None = None) -> torch.Tensor:
        """Predicted (D,) embedding of the answer to ``query`` for the window (default: current)."""
        return self.model.predict(self._features(window), [query])[0]

    def _rank(self, embedding: torch.Tensor, bank: PhraseBank, top_k: int | None = None,
              bonus: torch.Tensor | None = None) -> Ranked:
        scores = bank.embeddings @ embedding  # (N,)
        if bonus is not None:
            scores = scores + bonus
        probs = torch.softmax(scores / self.model.temperature.detach(), dim=0)
        order = torch.argsort(scores, descending=True)[: top_k or len(bank)]
        texts = bank.texts
        return Ranked(
            labels=[texts[i] for i in order.tolist()],
            scores=scores[order].tolist(),
            probabilities=probs[order].tolist(),
            embedding=embedding,
        )

    def _bank_for(self, candidates: list[str] | None, default: PhraseBank) -> PhraseBank:
        if candidates is None:
            return default
        return self._phrase_cache.get_or_make(tuple(candidates),
                                              lambda: PhraseBank(self.model.y_encoder, list(candidates)))

    @property
    def phrase_cache_texts(self) -> int:
        return self._phrase_cache.max_texts

    @phrase_cache_texts.setter
    def phrase_cache_texts(self, n: int) -> None:
        self._phrase_cache.max_texts = n

    @torch.no_grad()
    def state(self, top_k: int = 5, window: Window | torch.Tensor | None = None) -> Ranked:
        return self._rank(self.embed(self.queries.state, window), self._state_bank, top_k)

    @torch.no_grad()
    def action_between(
        self,
        before_window: Window | torch.Tensor,
        after_window: Window | torch.Tensor,
        candidates: list[str] | None = None,
        outcome_weight: float = 0.0,
        prefer: list[str] | tuple[str, ...] = (),
    ) -> Ranked:
        """Which action links ``before_window`` to ``after_window`` (WorldPrediction-style).
        ``outcome_weight`` > 0 adds the world model's check to each action's score:
        that weight x how well the outcome predicted for doing it from the before
        window matches the state seen after (``outcome_consistency``; one batched
        predictor pass over the bank). ``prefer``: candidates ranked first (in
        the predictor's order), e.g. the actions that link the states read
        before and after (``state_reading.actions_linking``)."""
        before = self._features(before_window)
        emb = self.model.predict(self._features(after_window), [self.queries.action], before_window_features=before)[0]
        bank = self._bank_for(candidates, self._action_bank)
        preferred = set(prefer)
        bonus = torch.tensor([PREFERRED_BONUS * (t in preferred) for t in bank.texts]) if preferred else None
        if not outcome_weight:
            return self._rank(emb, bank, bonus=bonus)
        after_state = self.embed(self.queries.state, after_window)
        check = outcome_weight * outcome_consistency(self.model, before, after_state, bank.texts, self.queries.outcome)
        return self._rank(emb, bank, bonus=check if bonus is None else check + bonus)

    @torch.no_grad()
    def predict_outcome(
        self, action: str, candidates: list[str] | None = None, window: Window | torch.Tensor | None = None
    ) -> Ranked:
        """Which state results if the robot does ``action`` from the window (default: current)."""
        emb = self.embed(self.queries.outcome.format(action=action), window)
        return self._rank(emb, self._bank_for(candidates, self._state_bank))

    @torch.no_grad()
    def ask(self, question: str, candidates: list[str], window: Window | torch.Tensor | None = None) -> Ranked:
        """Discriminative VQA: rank ``candidates`` as answers to ``question``
        (a reading's cell question on its fact view, as ``read_state`` asks it)."""
        fact = question_fact(question) if self._inputs is not None else None
        features = self._view_windows(window, (fact,))[fact] if fact else window
        return self._rank(self.embed(question, features), self._bank_for(candidates, self._state_bank))

    def _view_windows(self, window: Window | torch.Tensor | None, names: tuple[str, ...] = fact_views.VIEWS
                      ) -> dict[str, torch.Tensor]:
        """fact -> (1,T,C,g,g): the fact views of the window's latest frame (a reading_views model)."""
        frame = self._inputs.frame(window if window is not None else self.window())
        return fact_view_windows(self.model, frame[None], self._features(window).shape[1], names)

    @torch.no_grad()
    def read_state(self, window: Window | torch.Tensor | None = None) -> Reading:
        """The state read from the window: the colour and the shape on each
        cell and the lamp asked one fact at a time, with the state query, in one
        batched predictor pass (14 queries); the most probable consistent state
        (``state_reading.compose_state``) then stands against the states of the
        state bank, facts and state query voting (``state_reading.BankVote``).
        Any state can come out, also pairs the state query never saw and states
        that are in no bank; ``embedding`` is its caption's Y-encoder embedding."""
        # a reading_views model: the colour and the shape questions look at the latest frame's fact views
        views = self._view_windows(window) if self._inputs is not None else None
        probs, query_emb = reading_pass(self.model, self._features(window), self._reading, self.queries.state, views)
        composed = compose_state(probs[0])[0]
        vote = bank_vote(tuple(self._state_bank.texts))
        state, confidence = vote.choose(probs[0], query_emb[0], self._state_bank.embeddings.numpy(), composed,
                                        self._caption_embedding(state_caption(composed)).numpy(),
                                        float(self.model.temperature.detach()))
        caption = state_caption(state)
        return Reading(caption=caption, state=state, confidence=confidence, embedding=self._caption_embedding(caption))

    def _caption_embedding(self, caption: str) -> torch.Tensor:
        return self._read_captions.get_or_make((caption,), lambda: self.model.encode_text([caption])[0])
