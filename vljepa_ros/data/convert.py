"""Convert your own robot data (images or a video + captions) to the dataset format.

    python -m vljepa_ros.data.convert --images DIR_or_VIDEO --captions captions.jsonl \
        --out ROOT --split train --episode NAME [--fps 15]

captions.jsonl: one JSON object per line, each giving the caption from that
time on: ``{"t": 3.2, "caption": "..."}`` or ``{"frame": 48, "caption": "..."}``.
Optional action lines mark transitions:
``{"t": 3.0, "t_end": 3.8, "action": "push the red cube to the left"}``
(``frame``/``frame_end`` also accepted; ``paraphrases`` lists are kept).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys

import numpy as np

from .. import __version__
from .dataset import FORMAT_VERSION, frame_file, read_jsonl, save_png, write_jsonl, write_meta

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".mpg", ".mpeg")


class ConvertError(ValueError):
    pass


def _iter_video(path: str):
    try:
        import av  # type: ignore
    except ImportError:
        av = None
    if av is not None:
        with av.open(path) as c:
            for fr in c.decode(video=0):
                yield fr.to_ndarray(format="rgb24")
        return
    try:
        import imageio.v3 as iio  # type: ignore
    except ImportError:
        raise ConvertError(
            f"{path}: reading video needs PyAV ('pip install av') or imageio "
            "('pip install imageio[pyav]'); neither is installed. Alternatively "
            "extract frames to a folder of images and pass the folder."
        ) from None
    for fr in iio.imiter(path):
        yield np.asarray(fr)[..., :3]


def _iter_images(src: str):
    from PIL import Image

    if os.path.isdir(src):
        files = sorted(f for f in os.listdir(src) if f.lower().endswith(IMAGE_EXT))
        if not files:
            raise ConvertError(f"{src}: no images ({', '.join(IMAGE_EXT)}) in this folder")
        for f in files:
            try:
                with Image.open(os.path.join(src, f)) as im:
                    yield np.asarray(im.convert("RGB"))
            except Exception as e:
                raise ConvertError(f"{os.path.join(src, f)}: cannot read image: {e}") from None
    elif os.path.isfile(src):
        if not src.lower().endswith(VIDEO_EXT):
            raise ConvertError(f"{src}: not a folder of images nor a video ({', '.join(VIDEO_EXT)})")
        yield from _iter_video(src)
    else:
        raise ConvertError(f"{src}: no such file or folder")


def _time_of(rec: dict, fps: float, lineno: int, key_t="t", key_f="frame") -> float:
    if key_t in rec:
        v = rec[key_t]
    elif key_f in rec:
        v = rec[key_f] / fps if isinstance(rec[key_f], (int, float)) else None
    else:
        raise ConvertError(f"captions line {lineno}: needs \"{key_t}\" (seconds) or \"{key_f}\" (index)")
    if not isinstance(v, (int, float)) or v < 0:
        raise ConvertError(f"captions line {lineno}: time must be a number >= 0, got {v!r}")
    return float(v)


def parse_captions(path: str, fps: float):
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: captions file not found")
    try:
        recs = read_jsonl(path)
    except ValueError as e:
        raise ConvertError(str(e)) from None
    caps, acts = [], []
    for n, r in enumerate(recs, 1):
        if not isinstance(r, dict):
            raise ConvertError(f"{path}:{n}: each line must be a JSON object")
        if "caption" in r:
            if not isinstance(r["caption"], str) or not r["caption"].strip():
                raise ConvertError(f"{path}:{n}: \"caption\" must be a non-empty string")
            caps.append((_time_of(r, fps, n), r["caption"].strip(), r.get("paraphrases", [])))
        elif "action" in r:
            t0 = _time_of(r, fps, n)
            t1 = _time_of(r, fps, n, "t_end", "frame_end") if ("t_end" in r or "frame_end" in r) else t0
            if t1 < t0:
                raise ConvertError(f"{path}:{n}: action ends before it starts")
            acts.append((t0, t1, str(r["action"]), r.get("paraphrases", [])))
        else:
            raise ConvertError(f"{path}:{n}: needs a \"caption\" or an \"action\" key")
    if not caps:
        raise ConvertError(f"{path}: no caption lines")
    caps.sort(key=lambda x: x[0])
    acts.sort(key=lambda x: x[0])
    return caps, acts


def convert(images: str, captions: str, out: str, split: str, episode: str,
            fps: float = 15.0, compress_level: int = 1) -> dict:
    if fps <= 0:
        raise ConvertError("--fps must be > 0")
    if split not in ("train", "val", "test"):
        raise ConvertError(f"split must be train/val/test, got {split!r}")
    if not episode or "/" in episode or episode.startswith("."):
        raise ConvertError(f"bad episode name {episode!r}")
    caps, acts = parse_captions(captions, fps)
    sdir = os.path.join(out, split)
    if os.path.exists(os.path.join(sdir, episode)):
        raise ConvertError(f"{os.path.join(sdir, episode)} exists already")
    frames: list[dict] = []
    ci = -1
    size = None
    for i, rgb in enumerate(_iter_images(images)):
        t = i / fps
        while ci + 1 < len(caps) and caps[ci + 1][0] <= t + 1e-9:
            ci += 1
        if ci < 0:
            continue  # before the first caption: no label, skip
        size = list(rgb.shape[1::-1])
        rel = frame_file(episode, i)
        save_png(os.path.join(sdir, rel), rgb, compress_level)
        tid = None
        for k, (t0, t1, _, _) in enumerate(acts):
            if t0 - 1e-9 <= t <= t1 + 1e-9:
                tid = f"a{k:03d}"
        frames.append({"episode": episode, "index": i, "t": round(t, 6), "file": rel,
                       "state": None, "caption": caps[ci][1],
                       "paraphrases": list(caps[ci][2]), "transition_id": tid})
    if not frames:
        raise ConvertError("no frames were converted (empty input, or all frames before the first caption)")
    idx = [f["index"] for f in frames]

    def cap_at(i):
        for f in frames:
            if f["index"] == i:
                return f["caption"]
        return None

    trans = []
    for k, (t0, t1, text, par) in enumerate(acts):
        fs, fe = int(round(t0 * fps)), int(round(t1 * fps))
        prev_end = int(round(acts[k - 1][1] * fps)) + 1 if k else idx[0]
        nxt = int(round(acts[k + 1][0] * fps)) - 1 if k + 1 < len(acts) else idx[-1]
        bf = [prev_end, fs - 1] if fs - 1 >= prev_end else None
        af = [fe + 1, nxt] if nxt >= fe + 1 else None
        trans.append({"episode": episode, "id": f"a{k:03d}", "kind": "custom", "action": text,
                      "action_paraphrases": list(par), "t_start": t0, "t_end": t1,
                      "frame_start": fs, "frame_end": fe,
                      "before_frames": bf, "after_frames": af,
                      "before_state": cap_at(bf[1]) if bf else None,
                      "after_state": cap_at(af[0]) if af else None})
    write_jsonl(os.path.join(sdir, "frames.jsonl"), frames, mode="a")
    write_jsonl(os.path.join(sdir, "transitions.jsonl"), trans, mode="a")
    mp = os.path.join(out, "meta.json")
    if os.path.exists(mp):
        with open(mp) as f:
            meta = json.load(f)
    else:
        meta = {"format_version": FORMAT_VERSION, "generator": "vljepa_ros.data.convert",
                "generator_version": __version__,
                "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                "seed": None, "fps": float(fps), "image_size": size, "counts": {}, "world": None}
    c = meta.setdefault("counts", {}).setdefault(split, {"episodes": 0, "frames": 0, "transitions": 0})
    c["episodes"] += 1
    c["frames"] += len(frames)
    c["transitions"] += len(trans)
    meta.setdefault("sources", []).append({"episode": episode, "split": split,
                                           "images": os.path.abspath(images),
                                           "captions": os.path.abspath(captions)})
    write_meta(out, meta)
    return {"frames": len(frames), "transitions": len(trans)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Convert images/video + captions.jsonl to the vljepa_ros dataset format.")
    ap.add_argument("--images", required=True, help="folder of images (sorted by name) or a video file")
    ap.add_argument("--captions", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="train", choices=["train", "val", "test"])
    ap.add_argument("--episode", required=True)
    ap.add_argument("--fps", type=float, default=15.0)
    a = ap.parse_args(argv)
    try:
        r = convert(a.images, a.captions, a.out, a.split, a.episode, a.fps)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"converted {r['frames']} frames, {r['transitions']} transitions into {a.out}/{a.split}/{a.episode}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
