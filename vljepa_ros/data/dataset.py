"""On-disk dataset format (see docs/dataset.md) and its reader.

    <root>/meta.json
    <root>/<split>/frames.jsonl        one line per frame
    <root>/<split>/transitions.jsonl   one line per transition
    <root>/<split>/<episode>/frames/000000.png ...
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

FORMAT_VERSION = "1.0"
SPLITS = ("train", "val", "test")


def frame_file(episode: str, index: int) -> str:
    """Relative path (to the split dir) of a frame image."""
    return f"{episode}/frames/{index:06d}.png"


def save_png(path: str, rgb: np.ndarray, compress_level: int = 1) -> None:
    from PIL import Image

    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(
        path, compress_level=compress_level
    )


def load_png(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def write_jsonl(path: str, records, mode: str = "w") -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, mode) as f:
        for r in records:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def read_jsonl(path: str) -> list[dict]:
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: bad JSON line: {e}") from None
    return out


def merge_episode_parts(root: str, split: str, episodes: list[str]) -> None:
    """Concatenate per-episode ``_frames.jsonl``/``_transitions.jsonl`` parts
    into the split files (in the given episode order) and delete the parts."""
    sdir = os.path.join(root, split)
    os.makedirs(sdir, exist_ok=True)
    for kind in ("frames", "transitions"):
        with open(os.path.join(sdir, f"{kind}.jsonl"), "w") as out:
            for ep in episodes:
                part = os.path.join(sdir, ep, f"_{kind}.jsonl")
                if os.path.exists(part):
                    with open(part) as f:
                        out.write(f.read())
                    os.remove(part)


def write_meta(root: str, meta: dict) -> None:
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, "meta.json"), "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True)


def read_meta(root: str) -> dict:
    p = os.path.join(root, "meta.json")
    if not os.path.exists(p):
        raise FileNotFoundError(f"{root}: no meta.json (not a vljepa_ros dataset root)")
    with open(p) as f:
        return json.load(f)


@dataclass
class Frame:
    """One frame record; the image is loaded lazily on first access."""

    record: dict
    split_dir: str

    @property
    def episode(self) -> str:
        return self.record["episode"]

    @property
    def index(self) -> int:
        return self.record["index"]

    @property
    def t(self) -> float:
        return self.record["t"]

    @property
    def caption(self) -> str:
        return self.record["caption"]

    @property
    def path(self) -> str:
        return os.path.join(self.split_dir, self.record["file"])

    @property
    def image(self) -> np.ndarray:
        return load_png(self.path)

    def __getitem__(self, k):
        return self.record[k]


class Dataset:
    """Reader: ``Dataset(root, split)``.

    * ``episodes()`` -> sorted episode ids
    * ``frames(episode=None)`` -> iterator of :class:`Frame` (lazy images)
    * ``episode_frames(episode)`` -> list of Frame in index order
    * ``transitions(episode=None)`` -> list of transition dicts
    * ``image(frame_or_record)`` -> RGB uint8 array
    * ``len(ds)`` / iteration: frames
    """

    def __init__(self, root: str, split: str = "train"):
        self.root = root
        self.split = split
        self.meta = read_meta(root)
        self.split_dir = os.path.join(root, split)
        if not os.path.isdir(self.split_dir):
            raise FileNotFoundError(f"{root}: no split '{split}'")
        self._frames = read_jsonl(os.path.join(self.split_dir, "frames.jsonl"))
        self._transitions = read_jsonl(os.path.join(self.split_dir, "transitions.jsonl"))
        self._by_ep: dict[str, list[int]] = {}
        for i, r in enumerate(self._frames):
            self._by_ep.setdefault(r["episode"], []).append(i)

    @property
    def fps(self) -> float:
        return float(self.meta.get("fps", 15.0))

    def episodes(self) -> list[str]:
        return sorted(self._by_ep)

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self) -> Iterator[Frame]:
        return self.frames()

    def __getitem__(self, i: int) -> Frame:
        return Frame(self._frames[i], self.split_dir)

    def frames(self, episode: str | None = None) -> Iterator[Frame]:
        idx = range(len(self._frames)) if episode is None else self._by_ep.get(episode, [])
        for i in idx:
            yield Frame(self._frames[i], self.split_dir)

    def episode_frames(self, episode: str) -> list[Frame]:
        fr = list(self.frames(episode))
        return sorted(fr, key=lambda f: f.index)

    def transitions(self, episode: str | None = None) -> list[dict]:
        if episode is None:
            return list(self._transitions)
        return [t for t in self._transitions if t["episode"] == episode]

    def image(self, frame) -> np.ndarray:
        rec = frame.record if isinstance(frame, Frame) else frame
        return load_png(os.path.join(self.split_dir, rec["file"]))
