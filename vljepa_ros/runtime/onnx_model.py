"""The model on ONNX Runtime or OpenVINO, without torch: what perception_node
and decoder_node run on the ``onnxruntime`` / ``openvino`` backends.

* :class:`OnnxModel`: the exported graphs (``vljepa-export``) behind the same
  operations as :class:`~vljepa_ros.models.VLJEPA` (encode frames, predict,
  encode text, greedy text decoding), on numpy arrays.
* :class:`OnnxWorldModel`: :class:`~vljepa_ros.world_model.WorldModel` on an
  OnnxModel, the same methods and results (the export's parity check and
  ``test/test_export.py`` compare the two).
* :class:`OnnxCheckpoint`: a checkpoint directory opened without torch
  (config.json, phrase banks, queries) plus its export, checked to belong to
  the checkpoint's weights.

Text inputs: every graph that reads text takes the *looked-up word vectors*
(B,L,W) rather than token ids, and the runtime gathers them from one
memory-mapped copy of MiniLM's frozen 30522 x 384 word table
(``word_embeddings.npy``). With ids as inputs each of the three text graphs
would hold its own 47 MB copy of that table.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import fact_views
from ..sim.captions import state_caption
from ..state_reading import (
    answer_probabilities,
    bank_vote,
    compose_state,
    question_fact,
    reading_facts,
    reading_questions,
)
from ..world_types import (
    CACHE_FRAMES,
    PREFERRED_BONUS,
    CandidateCache,
    Decoded,
    FrameInputs,
    QueryTemplates,
    Ranked,
    Reading,
    Window,
)
from . import (
    EXPORT_FORMAT,
    GRAPH_FILES,
    MANIFEST_FILE,
    ONNX_BACKENDS,
    TOKENIZER_FILE,
    WORDS_FILE,
    BackendError,
    cache_export_dir,
    check_backend,
    export_dirs,
)

TEXT_BATCH = 256  # phrases per Y-encoder call when a bank is encoded
OUTCOME_BATCH = 16  # actions per predictor call in the world model's check of an action estimate


# ---------------------------------------------------------------------------
# Pre-processing and tokenisation (the same results as the torch path)
# ---------------------------------------------------------------------------


def preprocess_frame_np(image: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 RGB (H,W,3) -> float32 (3,S,S) in [-1,1], as ``models.preprocess_frame``.

    Pillow's float ("F") bilinear resize filters with the scale-widened kernel
    that torch's ``interpolate(antialias=True)`` was written to match
    (max difference ~1e-5 in [-1,1], test_export); float mode avoids the
    rounding to uint8 of an RGB resize.
    """
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"expected uint8 RGB array (H,W,3), got "
            f"{getattr(image, 'dtype', type(image))} {getattr(image, 'shape', '')}"
        )
    if image.shape[:2] == (image_size, image_size):
        x = image.transpose(2, 0, 1).astype(np.float32)
    else:
        from PIL import Image

        x = np.stack([
            np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F")
                       .resize((image_size, image_size), Image.BILINEAR))
            for c in range(3)
        ])
    return np.clip(x / 127.5 - 1.0, -1.0, 1.0).astype(np.float32, copy=False)


class WordPiece:
    """MiniLM's tokenizer from its ``tokenizer.json`` (the `tokenizers` library,
    no torch): the ids, masks and decoded text that ``models.text.tokenize`` and
    transformers' ``decode`` give (test_export checks the phrase banks)."""

    def __init__(self, path: Path):
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        self._tok.no_padding()
        self._tok.no_truncation()
        self.pad_id = self._tok.token_to_id("[PAD]")
        self.sep_id = self._tok.token_to_id("[SEP]")

    def __call__(self, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        # texts -> ids (B,L) int64, mask (B,L) bool; [CLS] ... [SEP] then pad, L = longest (<= max_length)
        self._tok.enable_truncation(max_length)
        self._tok.enable_padding(pad_id=self.pad_id, pad_token="[PAD]")
        enc = self._tok.encode_batch([str(t) for t in texts])
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=bool)
        return ids, mask

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode(ids, skip_special_tokens=True).strip()


# ---------------------------------------------------------------------------
# Engines
# ---------------------------------------------------------------------------


class _OrtGraph:
    def __init__(self, path: Path, threads: int):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        # No spin-waiting between ops: on a CPU shared with the camera and the
        # other node a spinning pool steals the cores it waits for (the same
        # effect as OMP_WAIT_POLICY=ACTIVE in torch, docs/design.md).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No memory arena: an arena keeps its largest working set for the
        # process's life (perception peak 303 -> 272 MB, vljepa_ros/benchmark/backends.py).
        so.enable_cpu_mem_arena = False
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]

    def __call__(self, **inputs: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.outputs, inputs)


class _OvGraph:
    _core = None

    def __init__(self, path: Path, threads: int):
        import openvino as ov

        if _OvGraph._core is None:
            _OvGraph._core = ov.Core()
        # LATENCY: one request at a time, as the nodes call it; no core pinning
        # (the CPU is shared with the camera and the other node).
        config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "ENABLE_CPU_PINNING": False}
        self.compiled = _OvGraph._core.compile_model(_OvGraph._core.read_model(str(path)), "CPU", config)
        self.request = self.compiled.create_infer_request()
        self.outputs = list(self.compiled.outputs)

    def __call__(self, **inputs: np.ndarray) -> list[np.ndarray]:
        result = self.request.infer(inputs)
        # copies: the request reuses its output buffers on the next call
        return [np.array(result[o]) for o in self.outputs]


_ENGINES = {"onnxruntime": _OrtGraph, "openvino": _OvGraph}


def _engine(backend: str):
    check_backend(backend)
    if backend not in ONNX_BACKENDS:
        raise BackendError(f"backend {backend!r} does not run ONNX graphs; use one of {', '.join(ONNX_BACKENDS)}")
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino"}[backend]
    try:
        __import__(module)
    except ImportError as e:
        raise BackendError(f"backend {backend!r} needs the Python package {module!r} "
                           f"(requirements/core.txt): {e}") from e
    return _ENGINES[backend]


# ---------------------------------------------------------------------------
# The exported model
# ---------------------------------------------------------------------------


def read_manifest(export_dir: str | os.PathLike) -> dict:
    d = Path(export_dir)
    f = d / MANIFEST_FILE
    if not f.is_file():
        raise BackendError(f"{f}: no ONNX export here (run `vljepa-export`)")
    try:
        manifest = json.loads(f.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BackendError(f"{f}: not valid JSON ({e})") from e
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise BackendError(f"{f}: format is {manifest.get('format') if isinstance(manifest, dict) else None!r}, "
                           f"expected {EXPORT_FORMAT!r} (re-run `vljepa-export`)")
    for key in ("model_id", "graphs", "config"):
        if key not in manifest:
            raise BackendError(f"{f}: missing key {key!r} (re-run `vljepa-export`)")
    return manifest


class _Config:
    """Attribute access to a config dict (``cfg.x_encoder.window_frames``), as
    the torch model's dataclass config reads."""

    def __init__(self, d: dict):
        for k, v in d.items():
            setattr(self, k, _Config(v) if isinstance(v, dict) else v)


class OnnxModel:
    """An export on one backend. Arrays in, arrays out (float32)."""

    def __init__(self, export_dir: str | os.PathLike, backend: str = "onnxruntime", threads: int = 1):
        self.dir = d = Path(export_dir)
        self.backend = backend
        engine = _engine(backend)
        self.manifest = m = read_manifest(d)
        self.model_id = m["model_id"]
        self.cfg = _Config(m["config"])
        self.cfg.embed_dim = int(self.cfg.predictor.embed_dim)  # VLJEPAConfig.embed_dim (a property there)
        files = {name: d / GRAPH_FILES[name] for name in m["graphs"]}
        for f in [*files.values(), d / WORDS_FILE, d / TOKENIZER_FILE]:
            if not f.is_file():
                raise BackendError(f"{f}: file missing from the ONNX export of {self.model_id} "
                                   "(re-run `vljepa-export`)")
        self.graphs = {name: engine(f, threads) for name, f in files.items()}
        self.words = np.load(d / WORDS_FILE, mmap_mode="r")  # (V,W) float32; pages load as rows are used
        self.tokenizer = WordPiece(d / TOKENIZER_FILE)
        self.temperature = float(m["temperature"])
        self.tokens_per_frame = int(self.cfg.x_encoder.grid) ** 2
        dec = m.get("decoder")
        self.decoder = None if dec is None or "decoder_step" not in self.graphs else dec
        if self.decoder is not None:
            self.vocab_ids = np.asarray(dec["vocab_ids"], dtype=np.int64)

    @property
    def has_decoder(self) -> bool:
        return self.decoder is not None

    def _graph(self, name: str):
        g = self.graphs.get(name)
        if g is None:
            raise BackendError(f"{self.dir / GRAPH_FILES[name]}: graph {name!r} not in this export "
                               f"(re-run `vljepa-export` without choosing graphs)")
        return g

    def _words(self, ids: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.words[ids], dtype=np.float32)  # (B,L) -> (B,L,W)

    # ---- the model's operations (VLJEPA's, on arrays) --------------------------
    def encode_frames(self, images: np.ndarray) -> np.ndarray:
        # images (B,3,S,S) float32 in [-1,1] -> features (B,C,g,g)
        return self._graph("frames")(images=np.ascontiguousarray(images, dtype=np.float32))[0]

    def predict(self, window_features: np.ndarray, queries: list[str] | str,
                before_window_features: np.ndarray | None = None) -> np.ndarray:
        """(B,T,C,g,g) window(s) + B queries (or one, broadcast) -> (B,D) unit-norm, as ``VLJEPA.predict``."""
        B = window_features.shape[0]
        if isinstance(queries, str):
            queries = [queries] * B
        if len(queries) != B:
            raise ValueError(f"{len(queries)} queries for {B} windows")
        ids, mask = self.tokenizer(queries, int(self.cfg.query_max_length))
        inputs = {"window": np.ascontiguousarray(window_features, dtype=np.float32),
                  "query_words": self._words(ids), "query_mask": mask}
        if before_window_features is None:
            return self._graph("state")(**inputs)[0]
        inputs["before"] = np.ascontiguousarray(before_window_features, dtype=np.float32)
        return self._graph("pair")(**inputs)[0]

    def preload_text_cache(self, trunk: dict[str, np.ndarray], head_weight: np.ndarray, head_bias: np.ndarray):
        """Use a checkpoint's text cache (the frozen MiniLM trunk's pooled output
        per bank phrase, ``checkpoint.TEXT_CACHE_FILE``) for those texts: their
        embedding is then only the trained head, as on the torch path (the
        same fp16 trunk values, and no MiniLM forward over a 6,000-phrase
        bank at start-up)."""
        self._trunk = trunk
        self._head = (np.asarray(head_weight, np.float32), np.asarray(head_bias, np.float32))

    def encode_text(self, texts: list[str]) -> np.ndarray:
        # B texts -> (B,D) unit norm
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), int(self.cfg.predictor.embed_dim)), np.float32)
        trunk = getattr(self, "_trunk", {})
        cached = [i for i, t in enumerate(texts) if t in trunk]
        if cached:  # YEncoder.forward on a frozen trunk: normalize(head(trunk output))
            w, b = self._head
            y = np.stack([trunk[texts[i]] for i in cached]).astype(np.float32) @ w.T + b
            out[cached] = y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)
        rest = [i for i, t in enumerate(texts) if t not in trunk]
        for k in range(0, len(rest), TEXT_BATCH):
            rows = rest[k: k + TEXT_BATCH]
            ids, mask = self.tokenizer([texts[i] for i in rows], int(self.cfg.y_encoder.max_length))
            out[rows] = self._graph("text")(words=self._words(ids), mask=mask)[0]
        return out

    def generate(self, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Greedy, batched, at most max_len tokens -> (sub ids (B,n), mean log-prob (B,)):
        ``GenerativeDecoder.generate`` with the exported step (no KV cache in
        either: the whole prefix runs at every step)."""
        if self.decoder is None:
            raise BackendError(f"the ONNX export of {self.model_id} has no generative decoder")
        dec, step = self.decoder, self.graphs["decoder_step"]
        e = np.ascontiguousarray(embeddings, dtype=np.float32)
        B = e.shape[0]
        seq = np.full((B, 1), dec["bos"], dtype=np.int64)
        logp_sum, n_tok, done = np.zeros(B, np.float32), np.zeros(B, np.float32), np.zeros(B, bool)
        for _ in range(int(dec["max_len"])):
            logp = step(condition=e, tokens=seq)[0]  # (B,V)
            nxt = logp.argmax(-1)
            lp = logp[np.arange(B), nxt]
            nxt = np.where(done, dec["pad"], nxt)
            logp_sum += np.where(done, 0.0, lp)
            n_tok += ~done
            seq = np.concatenate([seq, nxt[:, None]], axis=1)
            done |= nxt == dec["eos"]
            if done.all():
                break
        return seq[:, 1:], logp_sum / np.maximum(n_tok, 1)

    def decode_text(self, embeddings: np.ndarray) -> list[tuple[str, float]]:
        """(B,D) -> B (text, geometric-mean token probability), as ``GenerativeDecoder.decode``."""
        sub, mean_logp = self.generate(embeddings)
        out = []
        for row, lp in zip(self.vocab_ids[sub].tolist(), mean_logp.tolist()):
            if self.tokenizer.sep_id in row:
                row = row[: row.index(self.tokenizer.sep_id)]
            out.append((self.tokenizer.decode(row), math.exp(lp)))
        return out


# ---------------------------------------------------------------------------
# WorldModel on arrays
# ---------------------------------------------------------------------------


def pad_window_np(frames: np.ndarray, window_frames: int) -> np.ndarray:
    """``x_encoder.pad_window`` on arrays: (n,C,g,g) -> (T,C,g,g), the oldest frame repeated in front."""
    n = frames.shape[0]
    if not 1 <= n <= window_frames:
        raise ValueError(f"a window holds 1..{window_frames} frames, got {n}")
    if n == window_frames:
        return frames
    return np.concatenate([np.repeat(frames[:1], window_frames - n, axis=0), frames])


class _FeatureCache:
    """``FrameFeatureCache`` on arrays: per-frame features by increasing stamp."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._stamps: deque[float] = deque(maxlen=capacity)
        self._feats: deque[np.ndarray] = deque(maxlen=capacity)

    def __len__(self) -> int:
        return len(self._stamps)

    @property
    def stamps(self) -> list[float]:
        return list(self._stamps)

    def push(self, stamp_s: float, features: np.ndarray) -> bool:
        if self._stamps and stamp_s <= self._stamps[-1]:
            return False
        self._stamps.append(float(stamp_s))
        self._feats.append(features)
        return True

    def latest(self, n: int, until_s: float | None = None) -> tuple[np.ndarray, list[float]]:
        idx = [i for i, s in enumerate(self._stamps) if until_s is None or s <= until_s][-n:]
        if not idx:
            raise LookupError("no cached frames" + ("" if until_s is None else f" at or before t={until_s}"))
        return np.stack([self._feats[i] for i in idx]), [self._stamps[i] for i in idx]

    def clear(self) -> None:
        self._stamps.clear()
        self._feats.clear()


class _Bank:
    """``PhraseBank`` on an OnnxModel: texts and their (N,D) embeddings, encoded once."""

    def __init__(self, model: OnnxModel, texts: list[str]):
        self.model = model
        self._texts: tuple[str, ...] = ()
        self._emb: np.ndarray | None = None
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
            self._texts, self._emb = texts, None

    def __len__(self) -> int:
        return len(self._texts)

    @property
    def embeddings(self) -> np.ndarray:
        if self._emb is None:
            self._emb = self.model.encode_text(list(self._texts))
        return self._emb


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


class OnnxWorldModel:
    """:class:`~vljepa_ros.world_model.WorldModel` on an :class:`OnnxModel`."""

    def __init__(self, model: OnnxModel, state_bank: list[str], action_bank: list[str],
                 queries: QueryTemplates | None = None, window_frames: int | None = None,
                 cache_frames: int = CACHE_FRAMES, model_id: str = ""):
        self.model = model
        self.model_id = model_id or model.model_id
        self.queries = queries or QueryTemplates()
        T = int(model.cfg.x_encoder.window_frames)
        self.window_frames = window_frames or T
        if not 1 <= self.window_frames <= T:
            raise ValueError(f"window_frames must be in [1, {T}] for this model")
        self.cache = _FeatureCache(max(cache_frames, self.window_frames))
        self._state_bank = _Bank(model, state_bank)
        self._action_bank = _Bank(model, action_bank)
        self._phrase_cache = CandidateCache()  # the torch world model's rule (world_types)
        self._reading = [_Bank(model, answers) for _, answers in reading_questions()]
        self._read_captions = CandidateCache(4096)
        self._inputs = FrameInputs(self.cache.capacity) if getattr(model.cfg, "reading_views", False) else None

    @property
    def state_bank(self) -> list[str]:
        return self._state_bank.texts

    @property
    def action_bank(self) -> list[str]:
        return self._action_bank.texts

    def set_state_bank(self, texts: list[str]) -> None:
        self._state_bank.texts = texts
        _ = self._state_bank.embeddings
        bank_vote(tuple(self._state_bank.texts))  # parsed now, not on the next change

    def set_action_bank(self, texts: list[str]) -> None:
        self._action_bank.texts = texts
        _ = self._action_bank.embeddings

    def push_frame(self, image_rgb_uint8: np.ndarray, stamp_s: float) -> None:
        x = preprocess_frame_np(image_rgb_uint8, int(self.model.cfg.x_encoder.image_size))
        if self.cache.push(stamp_s, self.model.encode_frames(x[None])[0]) and self._inputs is not None:
            self._inputs.push(stamp_s, x)  # float32, as training and evaluation view it

    def clear_stream(self) -> None:
        """``WorldModel.clear_stream``."""
        self.cache.clear()
        if self._inputs is not None:
            self._inputs.clear()

    def window(self, until_s: float | None = None) -> Window:
        feats, stamps = self.cache.latest(self.window_frames, until_s)
        return Window(pad_window_np(feats, self.window_frames), tuple(stamps))

    def _features(self, window: Window | np.ndarray | None) -> np.ndarray:
        if window is None:
            window = self.window()
        f = window.features if isinstance(window, Window) else window
        return f[None] if f.ndim == 4 else f

    def embed(self, query: str, window: Window | np.ndarray | None = None) -> np.ndarray:
        return self.model.predict(self._features(window), [query])[0]

    def _rank(self, embedding: np.ndarray, bank: _Bank, top_k: int | None = None,
              bonus: np.ndarray | None = None) -> Ranked:
        scores = bank.embeddings @ embedding  # (N,)
        if bonus is not None:
            scores = scores + bonus
        probs = _softmax(scores / self.model.temperature)
        order = np.argsort(-scores, kind="stable")[: top_k or len(bank)]
        texts = bank.texts
        return Ranked(labels=[texts[i] for i in order.tolist()], scores=scores[order].tolist(),
                      probabilities=probs[order].tolist(), embedding=embedding)

    def _bank_for(self, candidates: list[str] | None, default: _Bank) -> _Bank:
        if candidates is None:
            return default
        return self._phrase_cache.get_or_make(tuple(candidates), lambda: _Bank(self.model, list(candidates)))

    def state(self, top_k: int = 5, window: Window | np.ndarray | None = None) -> Ranked:
        return self._rank(self.embed(self.queries.state, window), self._state_bank, top_k)

    def action_between(self, before_window, after_window, candidates: list[str] | None = None,
                       outcome_weight: float = 0.0, prefer: list[str] | tuple[str, ...] = ()) -> Ranked:
        before = self._features(before_window)
        emb = self.model.predict(self._features(after_window), [self.queries.action], before)[0]
        bank = self._bank_for(candidates, self._action_bank)
        preferred = set(prefer)
        bonus = np.array([PREFERRED_BONUS * (t in preferred) for t in bank.texts]) if preferred else 0.0
        if not outcome_weight:
            return self._rank(emb, bank, bonus=bonus if preferred else None)
        after_state = self.embed(self.queries.state, after_window)
        # world_model.outcome_consistency on arrays, OUTCOME_BATCH actions per
        # call: rows are independent, and the engine's working memory for a
        # batch of the whole 92-action bank stayed in the process (+200 MB RSS)
        queries = [self.queries.outcome.format(action=a) for a in bank.texts]
        outcomes = np.concatenate([
            self.model.predict(np.repeat(before, len(queries[i: i + OUTCOME_BATCH]), axis=0),
                               queries[i: i + OUTCOME_BATCH])
            for i in range(0, len(queries), OUTCOME_BATCH)])
        return self._rank(emb, bank, bonus=outcome_weight * (outcomes @ after_state) + bonus)

    def predict_outcome(self, action: str, candidates: list[str] | None = None, window=None) -> Ranked:
        emb = self.embed(self.queries.outcome.format(action=action), window)
        return self._rank(emb, self._bank_for(candidates, self._state_bank))

    def ask(self, question: str, candidates: list[str], window=None) -> Ranked:
        fact = question_fact(question) if self._inputs is not None else None
        if fact:  # a reading's cell question on its fact view (WorldModel.ask)
            f = self._features(window)
            view = self._view_features(window, (fact,))[0]
            window = np.broadcast_to(view, f.shape[1:])[None].copy()
        return self._rank(self.embed(question, window), self._bank_for(candidates, self._state_bank))

    def _view_features(self, window, names=fact_views.VIEWS) -> np.ndarray:
        """(len(names),C,g,g): the fact views of the window's latest frame through the backbone."""
        frame = self._inputs.frame(window if window is not None else self.window())
        return self.model.encode_frames(np.stack([fact_views.view(frame, name) for name in names]))


    def read_state(self, window=None) -> Reading:
        """``WorldModel.read_state``: the 13 reading questions and the state query
        in one batched pass, ``compose_state``, then ``BankVote`` over the state bank."""
        f = self._features(window)
        questions = [q for q, _ in reading_questions()] + [self.queries.state]
        per_question = np.repeat(f, len(questions), axis=0)  # (14,T,C,g,g)
        if self._inputs is not None:  # colour and shape on the latest frame's fact views (world_model.reading_pass)
            views = self._view_features(window)
            for k, fact in enumerate(reading_facts()):
                if fact is not None:
                    per_question[k] = views[fact_views.VIEWS.index(fact)][None]
        emb = self.model.predict(per_question, questions)  # (14,D)
        probabilities = answer_probabilities(emb[:-1], [b.embeddings for b in self._reading], self.model.temperature)
        composed = compose_state(probabilities)[0]
        vote = bank_vote(tuple(self._state_bank.texts))
        state, confidence = vote.choose(probabilities, emb[-1], self._state_bank.embeddings, composed,
                                        self._caption_embedding(state_caption(composed)), self.model.temperature)
        caption = state_caption(state)
        return Reading(caption=caption, state=state, confidence=confidence, embedding=self._caption_embedding(caption))

    def _caption_embedding(self, caption: str) -> np.ndarray:
        return self._read_captions.get_or_make((caption,), lambda: self.model.encode_text([caption])[0])


class OnnxText:
    """``semantic_events.TorchText`` on an OnnxModel: the Y-encoder, the
    retrieval decoder over a bank and the generative decoder."""

    def __init__(self, model: OnnxModel, bank: list[str]):
        self.model = model
        self.bank = _Bank(model, bank)

    @property
    def has_generative(self) -> bool:
        return self.model.has_decoder

    def encode(self, texts: list[str]) -> np.ndarray:
        return self.model.encode_text(list(texts))

    def generate(self, embedding: np.ndarray) -> str:
        return self.model.decode_text(embedding[None])[0][0]

    def retrieve(self, embedding: np.ndarray) -> Decoded:
        # RetrievalDecoder.decode: softmax over the bank at the model's temperature
        e = embedding / max(float(np.linalg.norm(embedding)), 1e-12)
        probs = _softmax(self.bank.embeddings @ e / self.model.temperature)
        i = int(probs.argmax())
        return Decoded(self.bank.texts[i], float(probs[i]))

    def encode_bank(self) -> None:
        _ = self.bank.embeddings


# ---------------------------------------------------------------------------
# A checkpoint opened without torch
# ---------------------------------------------------------------------------


def _model_id(name: str, blob: bytes) -> str:
    # the same id as checkpoint._model_id (test_export checks they agree)
    return f"{name}@{hashlib.sha256(blob).hexdigest()[:12]}"


@dataclass
class OnnxCheckpoint:
    """What the nodes read from a checkpoint, with the model on an ONNX backend.
    Duck-types :class:`~vljepa_ros.checkpoint.Checkpoint` where the pipelines
    read it (``model_id``, ``queries``, ``phrase_banks``, ``model.cfg``)."""

    model: OnnxModel
    model_id: str
    queries: dict
    phrase_banks: dict[str, list[str]]
    config: dict
    path: Path

    @property
    def backend(self) -> str:
        return self.model.backend

    @property
    def has_decoder(self) -> bool:
        return self.model.has_decoder

    def world_model(self, state_bank, action_bank, queries=None, window_frames=None) -> OnnxWorldModel:
        return OnnxWorldModel(self.model, state_bank, action_bank, queries, window_frames, model_id=self.model_id)

    def text_ops(self, bank: list[str]) -> OnnxText:
        return OnnxText(self.model, bank)


def read_checkpoint_config(path: str | os.PathLike) -> tuple[dict, str]:
    """(config.json, model_id recomputed from model.safetensors) of a checkpoint
    directory, without torch. BackendError names the file on any problem."""
    d = Path(path)
    cfile, wfile = d / "config.json", d / "model.safetensors"
    for f in (cfile, wfile):
        if not f.is_file():
            raise BackendError(f"{f}: file missing from checkpoint directory")
    try:
        config = json.loads(cfile.read_text())
        name = config["name"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as e:
        raise BackendError(f"{cfile}: not a checkpoint config ({e!r})") from e
    model_id = _model_id(name, wfile.read_bytes())
    if config.get("model_id") != model_id:
        raise BackendError(f"{wfile}: content hash gives {model_id}, but {cfile.name} says "
                           f"{config.get('model_id')} (file modified or replaced)")
    return config, model_id


def _load_text_cache(d: Path, model: OnnxModel, model_id: str, banks: dict[str, list[str]]) -> None:
    """checkpoint._load_text_cache without torch (safetensors' numpy reader)."""
    from safetensors import safe_open

    f = d / "text_cache.safetensors"
    if not f.is_file():
        return
    try:
        with safe_open(str(f), "np") as st:
            meta = st.metadata() or {}
            cache = {k: st.get_tensor(k) for k in st.keys()}
        with safe_open(str(d / "model.safetensors"), "np") as st:
            w, b = st.get_tensor("model.y_encoder.head.weight"), st.get_tensor("model.y_encoder.head.bias")
    except Exception as e:  # safetensors' error class is named differently across versions
        raise BackendError(f"{f}: cannot read the text cache or the Y-encoder head: {e}") from e
    if meta.get("model_id") != model_id:
        raise BackendError(f"{f}: made for {meta.get('model_id')!r}, not {model_id} (stale: re-save the checkpoint)")
    trunk = {}
    for kind, t in cache.items():
        bank = banks.get(kind)
        if bank is None or t.shape != (len(bank), w.shape[1]):
            raise BackendError(f"{f}: tensor {kind!r} has shape {t.shape}, expected "
                               f"({len(bank or [])}, {w.shape[1]}) for the {kind!r} phrase bank of config.json")
        trunk.update(zip(bank, t))
    model.preload_text_cache(trunk, w, b)


def find_export(checkpoint_dir: str | os.PathLike, model_id: str) -> Path | None:
    """The first export of ``model_id`` in :func:`export_dirs`, or None."""
    for d in export_dirs(checkpoint_dir, model_id):
        if (d / MANIFEST_FILE).is_file():
            try:
                if read_manifest(d).get("model_id") == model_id:
                    return d
            except BackendError:
                continue
    return None


def ensure_export(checkpoint_dir: str | os.PathLike, model_id: str, log: Callable[[str], None] | None = None,
                  timeout_s: float = 1800.0) -> Path:
    """The export of this checkpoint; exported into the cache first if there is
    none (``python -m vljepa_ros.export`` in a child process, so the caller
    never imports torch). ``log`` gets one line before and one after."""
    found = find_export(checkpoint_dir, model_id)
    if found is not None:
        return found
    out = cache_export_dir(model_id)
    say = log or (lambda _msg: None)
    say(f"no ONNX export of {model_id} found in {' or '.join(map(str, export_dirs(checkpoint_dir, model_id)))}: "
        f"exporting it into {out} (once; a few minutes on a small CPU)")
    t0 = time.monotonic()
    cmd = [sys.executable, "-m", "vljepa_ros.export", "--model", str(checkpoint_dir), "--out", str(out),
           "--no-parity"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0:
        raise BackendError(f"exporting {checkpoint_dir} to ONNX failed ({' '.join(cmd)}): "
                           f"{(proc.stderr or proc.stdout).strip()[-2000:]}")
    say(f"exported {model_id} to {out} in {time.monotonic() - t0:.0f} s")
    return out


def load_onnx_checkpoint(path: str | os.PathLike | None, backend: str, threads: int = 1,
                         export_dir: str | os.PathLike | None = None, auto_export: bool = False,
                         log: Callable[[str], None] | None = None) -> OnnxCheckpoint:
    """Open a checkpoint (default: the shipped model) on an ONNX backend.
    ``export_dir``: use this export; otherwise it is looked for
    (:func:`find_export`) and, with ``auto_export``, made. A missing or stale
    export raises BackendError naming the directory or file."""
    from ..assets import default_model_path

    check_backend(backend)
    d = Path(path) if path else default_model_path()
    config, model_id = read_checkpoint_config(d)
    if export_dir is None:
        found = find_export(d, model_id)
        if found is None and auto_export:
            found = ensure_export(d, model_id, log)
        if found is None:
            raise BackendError(
                f"no ONNX export of {model_id}: looked for {MANIFEST_FILE} in "
                f"{' and '.join(map(str, export_dirs(d, model_id)))}; run `vljepa-export --model {d}`")
        export_dir = found
    model = OnnxModel(export_dir, backend, threads)
    for name in ("frames", "state", "pair", "text"):  # what the pipelines run
        model._graph(name)
    if model.model_id != model_id:
        raise BackendError(f"{Path(export_dir) / MANIFEST_FILE}: export of {model.model_id}, "
                           f"but the checkpoint {d} is {model_id} (stale export: re-run `vljepa-export`)")
    banks = {k: list(v) for k, v in (config.get("phrase_banks") or {}).items()}
    _load_text_cache(d, model, model_id, banks)
    return OnnxCheckpoint(model=model, model_id=model_id, queries=dict(config.get("queries") or {}),
                          phrase_banks={k: list(v) for k, v in (config.get("phrase_banks") or {}).items()},
                          config=config, path=d)
