"""Streams and mappers from a checkpoint: every frame of a split embedded (and
its state read) as perception_node would, and the Y-decoders that map an
embedding to a state of the split."""

from __future__ import annotations

import json
import os

import numpy as np

from ..sim.captions import scene_caption, state_caption
from .streams import Mapper, Stream


def build_streams(ckpt, data_root: str, split: str = "test", max_episodes: int | None = None,
                  progress: bool = True, read_state: bool = True) -> tuple[list[Stream], list[str], float]:
    """Embed every frame of the split as perception_node would (and, with
    ``read_state``, read its state as ``WorldModel.read_state`` does); cached per model in <data>/cache."""
    import torch

    from ..data.dataset import Dataset
    from ..data.features import load_fact_view_features, load_features
    from ..models.x_encoder import pad_window, window_at
    from ..models.y_encoder import PhraseBank
    from ..state_reading import BankVote
    from ..world_model import read_states

    dataset = Dataset(data_root, split)
    episodes = dataset.episodes()[: max_episodes or None]
    records = {ep: [f.record for f in dataset.episode_frames(ep)] for ep in episodes}
    bank = sorted({scene_caption(r["state"]) for recs in records.values() for r in recs})
    bank_index = {c: i for i, c in enumerate(bank)}
    query = ckpt.queries.get("state") or "what is on the table?"
    cache = os.path.join(data_root, "cache", f"streams-{ckpt.model_id.replace('@', '-')}.npz")
    key = json.dumps({"split": split, "created": str(dataset.meta.get("created", "")), "query": query,
                      "counts": {ep: len(r) for ep, r in records.items()}, "read_state": read_state,
                      "reading": "bank_vote"}, sort_keys=True)
    cached, read, read_captions = {}, {}, {}
    if os.path.exists(cache):
        with np.load(cache, allow_pickle=False) as z:
            if str(z["key"]) == key:
                cached = {ep: z[f"emb_{ep}"] for ep in episodes}
                read = {ep: z[f"read_{ep}"] for ep in episodes if read_state}
                read_captions = {ep: [str(c) for c in z[f"caption_{ep}"]] for ep in episodes if read_state}
    if len(cached) != len(episodes):
        features = load_features(dataset, ckpt.model.x_encoder, progress=progress)
        views = (load_fact_view_features(dataset, ckpt.model.x_encoder, progress=progress)
                 if read_state and ckpt.model.cfg.reading_views else None)
        T = ckpt.model.cfg.x_encoder.window_frames
        model = ckpt.model.eval()
        cached, read, read_captions = {}, {}, {}
        node_bank = ckpt.phrase_banks.get("state", [])  # the reading votes over the nodes' bank, as they do
        vote = (BankVote(node_bank), PhraseBank(model.y_encoder, node_bank)) if node_bank else None
        with torch.no_grad():
            for ep in episodes:
                f = features[ep].float()  # (N,C,g,g)
                n = f.shape[0]
                out, captions = [], []
                for b in range(0, n, 128):  # windows as perception_node builds them (window_at)
                    ends = range(b, min(n, b + 128))
                    windows = torch.stack([window_at(f, e, T) for e in ends])
                    out.append(model.predict(windows, [query] * len(windows)))
                    if read_state:
                        # a reading_views model: each frame's fact views, repeated over the window (read_state)
                        view_windows = None if views is None else {
                            name: torch.stack([pad_window(v[ep][e:e + 1].float(), T) for e in ends])
                            for name, v in views.items()}
                        captions += [state_caption(st) for k in range(0, len(windows), 32)
                                     for st, _ in read_states(model, windows[k:k + 32], vote=vote, views=None if
                                                              view_windows is None else
                                                              {n: w[k:k + 32] for n, w in view_windows.items()})]
                cached[ep] = torch.cat(out).numpy().astype(np.float32)
                if read_state:  # the reading's embedding: its caption's, each distinct caption encoded once
                    distinct = sorted(set(captions))
                    emb = dict(zip(distinct, model.encode_text(distinct).numpy().astype(np.float32)))
                    read[ep] = np.stack([emb[c] for c in captions])
                    read_captions[ep] = captions
        os.makedirs(os.path.dirname(cache), exist_ok=True)
        np.savez(cache, key=np.array(key), **{f"emb_{ep}": e for ep, e in cached.items()},
                 **{f"read_{ep}": e for ep, e in read.items()},
                 **{f"caption_{ep}": np.array(c) for ep, c in read_captions.items()})
    streams = []
    trs = dataset.transitions()
    for ep in episodes:
        recs = records[ep]
        streams.append(Stream(
            episode=ep,
            stamps=np.array([r["t"] for r in recs], dtype=np.float64),
            embeddings=cached[ep],
            truth=np.array([bank_index[scene_caption(r["state"])] for r in recs], dtype=np.int64),
            transitions_s=np.array(sorted(t["t_start"] for t in trs if t["episode"] == ep), dtype=np.float64),
            readings=read.get(ep),
            reading_ids=(np.array([bank_index.get(c, -1) for c in read_captions[ep]], dtype=np.int64)
                         if ep in read_captions else None),
        ))
    return streams, bank, dataset.fps


TEXT_MATCHES = ("parse", "nearest")


def parsed_caption(text: str) -> str | None:
    """The canonical caption of the state a text describes, None if it describes none."""
    from ..sim.parse import parse_state

    state = parse_state(text)
    return None if state is None else state_caption(state)


def model_mapper(ckpt, bank: list[str], mode: str = "generative", batch: int = 256, match: str = "parse") -> Mapper:
    """Decode embeddings to text (generative decoder or retrieval over the model's state bank) and read
    which state of ``bank`` each text says: ``match="parse"`` reads the text back as a state
    (sim/parse.py; a text that is not exactly a bank state counts as wrong), ``"nearest"`` takes the
    nearest bank caption in the Y-encoder space (lenient: the list holds the truth). Texts are encoded
    once (cache), for the similarity metric."""
    if match not in TEXT_MATCHES:
        raise ValueError(f"match must be one of {TEXT_MATCHES}, got {match!r}")
    import torch

    model = ckpt.model.eval()
    with torch.no_grad():
        bank_emb = torch.cat([model.encode_text(bank[i:i + 256]) for i in range(0, len(bank), 256)]).numpy()
    text_cache: dict[str, np.ndarray] = {}
    bank_index = {c: i for i, c in enumerate(bank)}
    mapper = Mapper(decode=None, truth_embeddings=bank_emb.astype(np.float64))  # type: ignore[arg-type]
    if mode == "generative":
        if ckpt.decoder is None:
            raise ValueError(f"{ckpt.model_id} has no generative decoder; use --decode-mode retrieval")
        decode_texts = lambda e: [d.text for d in ckpt.decoder.decode(e)]  # noqa: E731
    else:
        from ..models.y_decoder import RetrievalDecoder
        from ..models.y_encoder import PhraseBank

        retrieval = RetrievalDecoder(PhraseBank(model.y_encoder, ckpt.phrase_banks.get("state", []) or bank),
                                     model.temperature.detach())
        decode_texts = lambda e: [d.text for d in retrieval.decode(e)]  # noqa: E731

    @torch.no_grad()
    def decode(embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        e = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
        texts: list[str] = []
        for i in range(0, e.shape[0], batch):
            texts += decode_texts(e[i:i + batch])
        new = sorted({t for t in texts if t not in text_cache})
        for i in range(0, len(new), 256):
            for t, v in zip(new[i:i + 256], model.encode_text(new[i:i + 256]).numpy()):
                text_cache[t] = v.astype(np.float64)
        temb = np.stack([text_cache[t] for t in texts]) if texts else np.zeros((0, bank_emb.shape[1]))
        if match == "parse":
            ids = np.array([bank_index.get(parsed_caption(t), -1) for t in texts], dtype=np.int64)
        else:
            ids = (temb @ bank_emb.T).argmax(1) if texts else np.zeros(0, dtype=np.int64)
        mapper.calls += len(texts)
        return ids, temb

    mapper.decode = decode
    mapper.texts = text_cache  # type: ignore[attr-defined]
    return mapper


def decoder_cost(ckpt, embeddings: np.ndarray, n: int = 200, seed: int = 0) -> dict:
    """Median ms of EventStream.decode (one call = one event's decode) per mode."""
    from ..semantic_events import EventStream

    rng = np.random.default_rng(seed)
    idx = rng.choice(embeddings.shape[0], size=min(n, embeddings.shape[0]), replace=False)
    out = {}
    for mode in ("generative", "retrieval"):
        if mode == "generative" and ckpt.decoder is None:
            continue
        dec = EventStream(ckpt, mode)
        for e in embeddings[idx[:5]]:
            dec.decode(e)  # warm-up
        ms = [dec.decode(e)[1] for e in embeddings[idx]]
        out[mode] = {"median_ms": float(np.median(ms)), "p95_ms": float(np.percentile(ms, 95)), "calls": len(ms)}
    return out
