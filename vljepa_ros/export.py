"""`vljepa-export`: a checkpoint's graphs to ONNX, and their parity with PyTorch.

    vljepa-export [--model DIR] [--out DIR] [--backends onnxruntime,openvino]
                  [--episode-seed 7 --split test --max-frames 0] [--no-parity]

Writes into ``--out`` (default: the cache, ``runtime.cache_export_dir``; or
``<checkpoint>/onnx`` to keep it next to the checkpoint, where nodes look
first) the graphs of :data:`vljepa_ros.runtime.GRAPH_FILES`, opset
:data:`~vljepa_ros.runtime.OPSET`, dynamic batch (and sequence length where
it varies), plus MiniLM's word table and tokenizer and ``onnx_manifest.json``
(model id, inputs and outputs of each graph, the model config).

How the model is cut (the runtime composes the graphs as ``VLJEPA`` does):

* ``frames``: backbone + pooling, images (B,3,S,S) -> (B,C,g,g), run once per
  camera frame and cached, as the torch path caches it;
* ``state`` / ``pair``: the X-encoder's trainable part (LayerNorm, projection,
  space/time embeddings) + the predictor, for one window / a before and an
  after window (the action query). The window length is dynamic up to the
  model's (a stream's first frames use a short window);
* ``text``: the Y-encoder (the phrase banks and the decoder's confidence);
* ``y_decoder_step``: one greedy step of the generative decoder, embedding +
  tokens so far -> log-probabilities of the next token; the loop runs in the
  runtime (no KV cache, like the torch decoder).

Text graphs take looked-up word vectors, not ids (runtime/onnx_model.py says why).

Then, unless ``--no-parity``, every graph is compared with PyTorch on frames
the simulator renders (a held-out test episode by default, the one `make
demo` plays), per backend: the cosine of every output, and whether the whole
episode through the perception pipeline and the event decoder gives the same
change events, texts and actions. Needs torch (the runtime does not).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import logging
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch.export import Dim

from .checkpoint import Checkpoint, load_model
from .models.text import minilm_path, tokenize
from .models.vljepa import VLJEPA
from .runtime import (
    EXPORT_FORMAT,
    GRAPH_FILES,
    MANIFEST_FILE,
    ONNX_BACKENDS,
    OPSET,
    TOKENIZER_FILE,
    WORDS_FILE,
    BackendError,
    cache_export_dir,
    check_backend,
)

# ---------------------------------------------------------------------------
# The graphs, as modules around the model's own (the same forward code runs)
# ---------------------------------------------------------------------------


class _WordsIn(nn.Module):
    """``BertEmbeddings`` after its word-table lookup: word vectors (B,L,W) in,
    + position + token type 0, LayerNorm (the rest of BertEmbeddings.forward)."""

    def __init__(self, te: nn.Module):
        super().__init__()
        self.position, self.token_type, self.ln = te.position, te.token_type, te.ln

    def forward(self, words: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(words.shape[1], device=words.device)
        return self.ln(words + self.position(pos)[None] + self.token_type.weight[0])


def _shallow(module: nn.Module, drop: tuple[str, ...] = (), **replace: nn.Module) -> nn.Module:
    """A copy of ``module`` sharing its parameters, with submodules dropped or
    replaced, so its own forward code runs with word-vector inputs and no
    unused weights end up in the graph."""
    m = copy.copy(module)
    m._modules = {k: v for k, v in module._modules.items() if k not in drop}
    for k, v in replace.items():
        m._modules[k] = v
    return m


class _FramesGraph(nn.Module):
    def __init__(self, model: VLJEPA):
        super().__init__()
        self.x = model.x_encoder

    def forward(self, images):  # (B,3,S,S) -> (B,C,g,g)
        return self.x.encode_frames(images)


class _PredictGraph(nn.Module):
    def __init__(self, model: VLJEPA):
        super().__init__()
        self.x = _shallow(model.x_encoder, drop=("backbone",))
        self.predictor = _shallow(model.predictor, text_embeddings=_WordsIn(model.predictor.text_embeddings))
        self.tokens_per_frame = model.cfg.x_encoder.grid ** 2

    def forward(self, window, query_words, query_mask, before=None):
        # window/before (B,T,C,g,g), query_words (B,L,W), query_mask (B,L) bool -> (B,D); VLJEPA.predict
        b = None if before is None else self.x.tokens(before)
        return self.predictor(self.x.tokens(window), query_words, query_mask, b,
                              tokens_per_frame=self.tokens_per_frame)


class _PairGraph(_PredictGraph):
    def forward(self, before, window, query_words, query_mask):
        return super().forward(window, query_words, query_mask, before)


class _TextGraph(nn.Module):
    def __init__(self, model: VLJEPA):
        super().__init__()
        self.y = _shallow(model.y_encoder, text_embeddings=_WordsIn(model.y_encoder.text_embeddings))

    def forward(self, words, mask):  # (B,L,W), (B,L) bool -> (B,D)
        return self.y.forward_ids(words, mask)


class _DecoderStep(nn.Module):
    def __init__(self, decoder: nn.Module):
        super().__init__()
        self.decoder = decoder

    def forward(self, condition, tokens):
        # condition (B,D) embedding, tokens (B,L) sub-vocabulary ids from [CLS] -> (B,V) log-probs of token L+1
        return torch.log_softmax(self.decoder(condition, tokens)[:, -1].float(), dim=-1)


def _example_inputs(ck: Checkpoint) -> dict[str, tuple[nn.Module, dict[str, torch.Tensor], dict]]:
    """graph name -> (module, example inputs, dynamic dims per input)."""
    model = ck.model
    xc = model.cfg.x_encoder
    C, g, T = model.x_encoder.backbone.out_channels, xc.grid, xc.window_frames
    # Examples of size 2 (not 1): torch.export specialises a dimension of size 1.
    # Distinct tensors for distinct inputs: an input passed twice becomes one.
    batch, qlen, tlen = Dim("batch", min=1, max=4096), Dim("query_len", min=2, max=model.cfg.query_max_length), \
        Dim("text_len", min=2, max=model.cfg.y_encoder.max_length)
    frames = Dim("frames", min=1, max=T) if T >= 2 else None  # a window of 1..T frames (stream start)
    t_ex = 2 if frames is not None else T
    window = torch.randn(2, t_ex, C, g, g)
    words = model.predictor.text_embeddings.word.weight[torch.tensor([[101, 2054, 102, 0]] * 2)].detach()
    mask = torch.tensor([[True, True, True, False]] * 2)
    win_dims = {0: batch, 1: frames} if frames is not None else {0: batch}
    graphs = {
        "frames": (_FramesGraph(model), {"images": torch.randn(2, 3, xc.image_size, xc.image_size)},
                   {"images": {0: batch}}),
        "state": (_PredictGraph(model), {"window": window, "query_words": words, "query_mask": mask},
                  {"window": win_dims, "query_words": {0: batch, 1: qlen}, "query_mask": {0: batch, 1: qlen}}),
        "pair": (_PairGraph(model),
                 {"before": torch.randn_like(window), "window": window, "query_words": words, "query_mask": mask},
                 {"before": win_dims, "window": win_dims, "query_words": {0: batch, 1: qlen},
                  "query_mask": {0: batch, 1: qlen}}),
        "text": (_TextGraph(model), {"words": words, "mask": mask},
                 {"words": {0: batch, 1: tlen}, "mask": {0: batch, 1: tlen}}),
    }
    if ck.decoder is not None:
        steps = Dim("tokens", min=1, max=ck.decoder.cfg.max_len + 1)
        graphs["decoder_step"] = (
            _DecoderStep(ck.decoder),
            {"condition": torch.randn(2, ck.decoder.cfg.embed_dim),
             "tokens": torch.full((2, 3), ck.decoder.bos_sub, dtype=torch.long)},
            {"condition": {0: batch}, "tokens": {0: batch, 1: steps}})
    return graphs


# (names that no op of the graph uses: ONNX rejects a value defined twice, and
# "embedding" is also the name the exporter gives embedding lookups)
OUTPUTS = {"frames": ["features"], "state": ["predicted"], "pair": ["predicted"], "text": ["text_embedding"],
           "decoder_step": ["next_logp"]}


def _export_graph(module: nn.Module, inputs: dict, dims: dict, path: Path, output_names: list[str],
                  opset: int) -> None:
    buf = io.StringIO()  # the exporter narrates each step on stdout; kept for its error message only
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # "torchvision is not installed" x 4 per graph
    try:
        with torch.no_grad(), contextlib.redirect_stdout(buf), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter-internal deprecation and axis-renaming notes
            torch.onnx.export(module.eval(), (), str(path), kwargs=inputs, dynamo=True, opset_version=opset,
                              input_names=list(inputs), output_names=output_names, dynamic_shapes=dims,
                              external_data=False, optimize=True)
    except Exception as e:
        raise RuntimeError(f"exporting {path.name} failed: {e}\n{buf.getvalue()[-3000:]}") from e


def export_onnx(ck: Checkpoint, out_dir: str | os.PathLike, opset: int = OPSET, log=print,
                graphs: tuple[str, ...] | None = None) -> Path:
    """Export the graphs of ``ck`` (default: all; ``graphs`` picks some, e.g. in
    tests) into ``out_dir`` (replaced whole, atomically); returns it."""
    out = Path(out_dir)
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model = ck.model.eval()
    manifest_graphs = {}
    try:
        todo = _example_inputs(ck)
        unknown = set(graphs or ()) - set(todo)
        if unknown:
            raise ValueError(f"unknown graphs {sorted(unknown)}; this checkpoint has {sorted(todo)}")
        for name, (module, inputs, dims) in todo.items():
            if graphs is not None and name not in graphs:
                continue
            t0 = time.perf_counter()
            _export_graph(module, inputs, dims, tmp / GRAPH_FILES[name], OUTPUTS[name], opset)
            manifest_graphs[name] = {
                "file": GRAPH_FILES[name],
                "inputs": {k: {"dtype": str(v.dtype).removeprefix("torch."),  # symbolic dims by name
                               "shape": [dims[k][i].__name__ if i in dims[k] else int(n)
                                         for i, n in enumerate(v.shape)]}
                           for k, v in inputs.items()},
                "outputs": OUTPUTS[name],
            }
            log(f"  {GRAPH_FILES[name]:<24} {(tmp / GRAPH_FILES[name]).stat().st_size / 1e6:6.1f} MB  "
                f"({time.perf_counter() - t0:.0f} s)")
        np.save(tmp / WORDS_FILE, model.predictor.text_embeddings.word.weight.detach().float().numpy())
        shutil.copyfile(minilm_path() / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        dec = ck.decoder
        manifest = {
            "format": EXPORT_FORMAT,
            "model_id": ck.model_id,
            "opset": opset,
            "torch": torch.__version__,
            "graphs": manifest_graphs,
            "config": model.cfg.to_dict(),
            "backbone_channels": model.x_encoder.backbone.out_channels,
            "temperature": float(model.temperature.detach()),
            "decoder": None if dec is None else {
                "vocab_ids": dec.vocab_ids.tolist(), "bos": dec.bos_sub, "eos": dec.eos_sub, "pad": dec.pad_sub,
                "max_len": dec.cfg.max_len},
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
        if out.exists():
            shutil.rmtree(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp, out)
        except OSError:
            # another process (the other node) finished the same export first
            if not (out / MANIFEST_FILE).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------------------
# Parity with PyTorch
# ---------------------------------------------------------------------------


def _cos(a, b) -> np.ndarray:
    """Row-wise cosine of two (N, ...) arrays (flattened per row)."""
    a = np.asarray(a, np.float64).reshape(len(a), -1)
    b = np.asarray(b, np.float64).reshape(len(b), -1)
    return (a * b).sum(1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def render_episode(seed: int, split: str, size: int, max_frames: int = 0) -> tuple[list[np.ndarray], list[float]]:
    """Frames of a scripted episode as the simulated camera renders them."""
    from .sim.episodes import EpisodeScript

    frames, stamps = [], []
    for i, t, rgb, _ in EpisodeScript.generate(seed, split).frames(width=size, height=size):
        if max_frames and i >= max_frames:
            break
        frames.append(rgb)
        stamps.append(t)
    return frames, stamps


def _events(ck, frames, stamps) -> tuple[list[tuple], np.ndarray, np.ndarray]:
    """The whole stream through PerceptionPipeline + EventStream, as
    the nodes run it -> (events, state embeddings (N,D), frame features (N,...))."""
    from .perception import PerceptionPipeline
    from .semantic_events import EventStream

    pipe = PerceptionPipeline(ck)
    dec = EventStream(ck, "generative" if getattr(ck, "decoder", None) is not None
                               or getattr(ck, "has_decoder", False) else "retrieval", expect_actions=True)
    events, embs, feats = [], [], []
    for rgb, t in zip(frames, stamps):
        r = pipe.process(rgb, t)
        embs.append(r.embedding)
        feats.append(np.asarray(pipe.world.cache.latest(1)[0][0]))
        if r.action is not None:
            for e in dec.note_action(r.action.before_stamp, r.action.after_stamp, r.action.ranked.top,
                                     r.action.ranked.probabilities[0]):
                events.append(e)
        events += dec.update(t, r.embedding)
    events += dec.flush()
    rows = [(e.kind, round(e.state_start_s, 4), round(e.decided_at_s, 4), e.text, e.action) for e in events]
    return rows, np.stack(embs), np.stack(feats)


def parity(ck: Checkpoint, checkpoint_dir: str | os.PathLike, export_dir: str | os.PathLike,
           frames: list[np.ndarray], stamps: list[float], backends=ONNX_BACKENDS, log=print) -> dict:
    """Cosine of every exported output against PyTorch on ``frames`` (uint8
    RGB), and whether the stream gives identical events. -> {backend: report}."""
    from .runtime.onnx_model import OnnxModel, load_onnx_checkpoint, preprocess_frame_np

    model = ck.model.eval()
    xc = model.cfg.x_encoder
    T = xc.window_frames
    with torch.no_grad():
        ref_events, ref_emb, ref_feats = _events(ck, frames, stamps)
        # windows of the stream for the predictor graphs (every 10th frame keeps it short)
        idx = list(range(T - 1, len(frames), 10)) or [len(frames) - 1]
        windows = np.stack([ref_feats[max(0, i - T + 1): i + 1] for i in idx if i >= T - 1] or [ref_feats[-T:]])
        before = np.roll(windows, 3, axis=0)  # another window of the same stream as "before"
        tw, tb = torch.from_numpy(windows), torch.from_numpy(before)
        ref_state = model.predict(tw, ck.queries.get("state", "what is on the table?")).numpy()
        ref_pair = model.predict(tw, ck.queries.get("action", "what action happened?"), tb).numpy()
        texts = sorted({t for bank in ck.phrase_banks.values() for t in bank}) or ["a red cube on the table"]
        texts = texts[:: max(1, len(texts) // 256)]  # a few hundred phrases through the Y-encoder graph
        ref_text = model.y_encoder.forward_ids(*tokenize(model.tokenizer, texts, model.cfg.y_encoder.max_length))
        ref_text = ref_text.numpy()  # the whole MiniLM, as the graph (not the checkpoint's fp16 text cache)
        images = np.stack([preprocess_frame_np(f, xc.image_size) for f in frames[:8]])
        ref_frames = model.encode_frames(torch.from_numpy(images)).numpy()
        ref_dec = None
        if ck.decoder is not None:
            e = torch.from_numpy(ref_emb[::max(1, len(ref_emb) // 8)][:8])
            ref_dec = ([d.text for d in ck.decoder.decode(e)], e.numpy())
    reports = {}
    for backend in backends:
        om = OnnxModel(export_dir, backend)
        rep = {
            "frames_cos_min": float(_cos(om.encode_frames(images), ref_frames).min()),
            "state_cos_min": float(_cos(om.predict(windows, ck.queries.get("state", "what is on the table?")),
                                        ref_state).min()),
            "pair_cos_min": float(_cos(om.predict(windows, ck.queries.get("action", "what action happened?"), before),
                                       ref_pair).min()),
            "text_cos_min": float(_cos(om.encode_text(texts), ref_text).min()),
            "texts": len(texts), "windows": len(windows),
        }
        if ref_dec is not None:
            got = [t for t, _ in om.decode_text(ref_dec[1])]
            rep["decoder_texts_same"] = f"{sum(a == b for a, b in zip(got, ref_dec[0]))}/{len(got)}"
        ock = load_onnx_checkpoint(checkpoint_dir, backend, export_dir=export_dir)
        events, emb, _ = _events(ock, frames, stamps)
        rep["stream_cos_min"] = float(_cos(emb, ref_emb).min())
        rep["frames_in_stream"] = len(frames)
        rep["events"] = len(events)
        rep["events_torch"] = len(ref_events)
        rep["events_identical"] = events == ref_events
        if not rep["events_identical"]:
            rep["events_diff"] = [(a, b) for a, b in zip(ref_events, events) if a != b][:3] or \
                f"{len(ref_events)} torch events vs {len(events)}"
        reports[backend] = rep
        log(f"  {backend:<12} cosine min: frames {rep['frames_cos_min']:.6f}  state {rep['state_cos_min']:.6f}  "
            f"pair {rep['pair_cos_min']:.6f}  text {rep['text_cos_min']:.6f} ({len(texts)} phrases)  "
            f"stream {rep['stream_cos_min']:.6f} ({len(frames)} frames)"
            + (f"  decoder texts same {rep['decoder_texts_same']}" if "decoder_texts_same" in rep else ""))
        log(f"  {'':<12} events: {len(events)} vs {len(ref_events)} in PyTorch, identical: {rep['events_identical']}"
            + ("" if rep["events_identical"] else f"  first differences: {rep['events_diff']}"))
    return reports


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="vljepa-export", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--model", default=None, help="checkpoint directory (default: the shipped model)")
    ap.add_argument("--out", default=None, help="export directory (default: the cache; <model>/onnx is looked "
                    "for first by the nodes)")
    ap.add_argument("--opset", type=int, default=OPSET)
    ap.add_argument("--backends", default=",".join(ONNX_BACKENDS), help="backends of the parity check")
    ap.add_argument("--episode-seed", type=int, default=7)
    ap.add_argument("--split", default="test", choices=("train", "val", "test"))
    ap.add_argument("--render-size", type=int, default=224, help="camera frame size (the model resizes)")
    ap.add_argument("--max-frames", type=int, default=0, help="parity on the first N frames (0 = whole episode)")
    ap.add_argument("--no-parity", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the parity report here")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    from .assets import default_model_path
    from .checkpoint import CheckpointError

    path = Path(args.model) if args.model else default_model_path()
    try:
        backends = [check_backend(b.strip()) for b in args.backends.split(",") if b.strip()]
        if "torch" in backends:
            raise BackendError("--backends: torch is the reference, list ONNX backends only")
        ck = load_model(path)
    except (CheckpointError, BackendError) as e:
        print(f"vljepa-export: {e}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else cache_export_dir(ck.model_id)
    print(f"vljepa-export: {ck.model_id} ({path}) -> {out}, opset {args.opset}, torch {torch.__version__}")
    t0 = time.perf_counter()
    export_onnx(ck, out, args.opset)
    print(f"exported in {time.perf_counter() - t0:.0f} s")
    if args.no_parity:
        return 0
    t0 = time.perf_counter()
    frames, stamps = render_episode(args.episode_seed, args.split, args.render_size, args.max_frames)
    print(f"parity on episode {args.split} seed {args.episode_seed}: {len(frames)} frames "
          f"({args.render_size} px, rendered in {time.perf_counter() - t0:.0f} s)")
    reports = parity(ck, path, out, frames, stamps, backends)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model_id": ck.model_id, "export": str(out), "episode_seed": args.episode_seed,
                                         "split": args.split, "backends": reports}, indent=2, default=str) + "\n")
    ok = all(r["events_identical"] and min(v for k, v in r.items() if k.endswith("cos_min")) >= 0.999
             for r in reports.values())
    print("parity: " + ("OK (cosine >= 0.999, identical events)" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
