"""Decoding policies over the streams: uniform (stride swept), selective (the
change detector, threshold swept) and Ward segments (non-causal), scored per frame."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..change_detection import (
    ChangeDetectorConfig,
    decode_quality,
    decode_similarity,
    match_events,
    online_decode_times,
    uniform_decode_times,
    ward_decode_times,
)
from .curves import decode_reduction
from .streams import Mapper, Stream, texts_at

STRIDES = (1, 2, 3, 5, 8, 12, 15, 20, 30, 45, 60, 90, 120)
THRESHOLDS = (0.02, 0.03, 0.05, 0.07, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4)
QUICK_STRIDES = (1, 3, 8, 15, 30, 60)
QUICK_THRESHOLDS = (0.05, 0.1, 0.2)
WARD_FACTORS = (0.5, 1.0, 2.0, 4.0)   # Ward segments per episode = factor x (true transitions + 1)


def _score(streams: list[Stream], mapper: Mapper, decodes: list[tuple[list[int], np.ndarray]]) -> dict:
    """decodes[e] = (decode frames, decoded bank ids) of stream e; pooled over all frames."""
    hits = frames = 0.0
    sims = 0.0
    n_decodes = 0
    for s, (dframes, ids, text_emb) in zip(streams, decodes):
        q = decode_quality(s.truth.tolist(), dframes, [int(i) for i in ids])
        sim = decode_similarity(mapper.truth_embeddings[s.truth], dframes, text_emb) if len(dframes) else 0.0
        hits += q * s.n
        sims += sim * s.n
        frames += s.n
        n_decodes += len(dframes)
    return {"decodes": n_decodes, "quality": hits / frames, "similarity": sims / frames}


def uniform_curve(streams: list[Stream], mapper: Mapper, strides: Sequence[int]) -> list[dict]:
    # Every frame's own text (its reading, or its decoded embedding) once; stride k reads frames 0, k, 2k, ...
    per_frame = [texts_at(s, mapper, range(s.n)) for s in streams]
    out = []
    for k in strides:
        decodes = []
        for s, (ids, temb) in zip(streams, per_frame):
            fr = uniform_decode_times(s.n, k)
            decodes.append((fr, ids[fr], temb[fr]))
        out.append({"stride": int(k), **_score(streams, mapper, decodes)})
    return out


def selective_run(streams: list[Stream], mapper: Mapper, config: ChangeDetectorConfig) -> dict:
    decodes, events_total, matched_total, truths_total = [], 0, 0, 0
    initial = 0
    for s in streams:
        triggers = online_decode_times(s.stamps, s.embeddings, config)
        fr = [i for i, _ in triggers]
        emb = np.stack([t.decode_embedding for _, t in triggers]) if triggers else None
        ids, temb = texts_at(s, mapper, fr, emb)
        decodes.append((fr, ids, temb))
        # Events = change triggers, timed by when their state began (what SemanticEvent.header.stamp carries).
        change_starts = [t.state_start_s for _, t in triggers if t.kind == "change"]
        initial += sum(t.kind == "initial" for _, t in triggers)
        events_total += len(change_starts)
        truths_total += len(s.transitions_s)
        matched_total += len(match_events(change_starts, s.transitions_s.tolist()))
    res = _score(streams, mapper, decodes)
    res.update({
        "threshold": config.threshold,
        "change_events": events_total,
        "initial_decodes": initial,
        "true_transitions": truths_total,
        "event_precision": matched_total / events_total if events_total else 1.0,
        "event_recall": matched_total / truths_total if truths_total else 1.0,
    })
    return res


def ward_run(streams: list[Stream], mapper: Mapper, factor: float, at: str = "midpoint") -> dict:
    decodes = []
    for s in streams:
        n_seg = max(1, int(round(factor * (len(s.transitions_s) + 1))))
        segs = ward_decode_times(s.embeddings, n_seg, at=at)
        fr = [f for f, _ in segs]
        ids, temb = texts_at(s, mapper, fr, np.stack([e for _, e in segs]))
        decodes.append((fr, ids, temb))
    return {"segments_per_true_segment": factor, "at": at, **_score(streams, mapper, decodes)}


def quality_benchmark(streams: list[Stream], mapper: Mapper, strides: Sequence[int] = STRIDES,
                      thresholds: Sequence[float] = THRESHOLDS, config: ChangeDetectorConfig | None = None,
                      ward_factors: Sequence[float] = WARD_FACTORS, fps: float = 15.0) -> dict:
    """Part 1 of the benchmark on any streams and any mapper (the smoke test uses synthetic ones)."""
    base = config or ChangeDetectorConfig()
    uni = uniform_curve(streams, mapper, strides)
    sweep = []
    for th in thresholds:
        try:
            cfg = ChangeDetectorConfig(**{**base.__dict__, "threshold": float(th),
                                          "hysteresis": min(base.hysteresis, 0.5 * float(th))})
        except ValueError:
            continue
        sweep.append(selective_run(streams, mapper, cfg))
    default = selective_run(streams, mapper, base)
    ward = [ward_run(streams, mapper, f) for f in ward_factors]
    ud = [u["decodes"] for u in uni]
    uq = [u["quality"] for u in uni]
    red = decode_reduction(ud, uq, default["decodes"], default["quality"])
    red_sim = decode_reduction(ud, [u["similarity"] for u in uni], default["decodes"], default["similarity"])
    frames = sum(s.n for s in streams)
    return {
        **red,
        "selective_quality": default["quality"],
        "selective_decodes": default["decodes"],
        "selective_similarity": default["similarity"],
        "uniform_similarity_same_decodes": red_sim["uniform_quality_same_decodes"],
        "decode_reduction_similarity": red_sim["decode_reduction"],
        "decode_reduction_similarity_is_lower_bound": red_sim["decode_reduction_is_lower_bound"],
        # Initial decodes count as decodes (one per episode), true transitions do not include them.
        "decodes_per_transition": default["decodes"] / max(1, default["true_transitions"]),
        "change_decodes_per_transition": default["change_events"] / max(1, default["true_transitions"]),
        "event_precision": default["event_precision"],
        "event_recall": default["event_recall"],
        "true_transitions": default["true_transitions"],
        "initial_decodes": default["initial_decodes"],
        "episodes": len(streams),
        "frames": frames,
        "video_minutes": frames / fps / 60.0,
        "selective_config": dict(base.__dict__),
        "curves": {"uniform": uni, "selective": sweep, "ward": ward, "selective_default": default},
    }
