"""The persistent moment store: LanceDB, embedded (a directory) or shared.

Why LanceDB (docs/memory.md has the numbers of every engine tried): it is the
only engine of those tried that met the query target at 10^6 moments on 2
cores in its embedded form, every write is one atomic commit of an
append-only columnar file plus a new manifest (a kill -9 mid-write leaves the
previous version, never a torn table), and the same client API opens a
shared store by URI (``s3://...`` object storage that a fleet shares, or
``db://...`` for a LanceDB server), so a fleet changes one parameter.

One table, ``moments``, one row per moment, keyed by its start stamp (ns).
The schema version lives in the table's schema metadata; a store written by
another schema is refused with a clear error, never read half-right.
Embeddings of every model are kept; every query filters on one model_id.
"""

from __future__ import annotations

import errno
import os
import threading
from dataclasses import dataclass

import numpy as np

from .moments import Moment, Pose

SCHEMA_VERSION = "1"
SCHEMA_KEY = b"vljepa_ros.memory.schema"
TABLE = "moments"
NPROBES, REFINE = 20, 5  # IVF partitions searched; candidates re-scored exactly = REFINE x top_k



def dir_bytes(path: str) -> int:
    """Bytes of every file under ``path`` (files that vanish meanwhile count 0)."""
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(root, f))
            except OSError:
                pass
    return total

class StoreError(RuntimeError):
    """The store cannot be opened or written as asked; the message says why and what to do."""


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _schema(dim: int):
    import pyarrow as pa

    return pa.schema([
        pa.field("id", pa.int64()),            # = start_ns
        pa.field("start_ns", pa.int64()),
        pa.field("end_ns", pa.int64()),
        pa.field("frame_id", pa.string()),
        pa.field("model_id", pa.string()),
        pa.field("n_frames", pa.int32()),
        pa.field("has_pose", pa.bool_()),
        pa.field("pose_frame", pa.string()),
        pa.field("px", pa.float64()), pa.field("py", pa.float64()), pa.field("pz", pa.float64()),
        pa.field("qx", pa.float64()), pa.field("qy", pa.float64()), pa.field("qz", pa.float64()),
        pa.field("qw", pa.float64()),
        pa.field("text", pa.string()),
        pa.field("action", pa.string()),
        pa.field("action_confidence", pa.float32()),
        pa.field("embedding", pa.list_(pa.float32(), dim)),
    ], metadata={SCHEMA_KEY: SCHEMA_VERSION.encode(), b"vljepa_ros.memory.dim": str(dim).encode()})


def _is_local(uri: str) -> bool:
    return "://" not in uri


@dataclass
class Hit:
    moment: Moment
    score: float


class MomentStore:
    """Moments on disk (or a shared URI). Thread-safe: one lock around the table.

    ``index_min_rows``: from this many rows on, an IVF-PQ vector index is
    built (below it an exact scan is faster than any index, and exact);
    ``maintain()`` folds new rows into it and compacts small commits.
    """

    def __init__(self, uri: str, dim: int, index_min_rows: int = 50_000):
        import lancedb

        self.uri, self.dim, self.index_min_rows = str(uri), int(dim), int(index_min_rows)
        self._lock = threading.Lock()
        if _is_local(self.uri):
            self._check_local_dir(self.uri)
        try:
            self._db = lancedb.connect(self.uri)
            names = list(self._db.list_tables().tables)
        except Exception as e:  # lancedb raises its own and OS errors
            raise StoreError(f"cannot open the memory store at {self.uri}: {e}") from e
        if TABLE in names:
            self._table = self._db.open_table(TABLE)
            self._check_schema()
        else:
            try:
                self._table = self._db.create_table(TABLE, schema=_schema(self.dim))
            except OSError as e:
                raise StoreError(self._os_reason(e)) from e
            except Exception as e:  # noqa: BLE001 - lance wraps OS errors in its own types
                raise StoreError(f"cannot create the memory store at {self.uri}: {e}") from e
        self._indexed_rows = self._vector_index_rows()

    # ---- opening --------------------------------------------------------------
    @staticmethod
    def _check_local_dir(path: str) -> None:
        if os.path.exists(path) and not os.path.isdir(path):
            raise StoreError(f"memory store path {path} exists and is not a directory")
        try:
            os.makedirs(path, exist_ok=True)
            probe = os.path.join(path, ".write_probe")
            with open(probe, "w") as f:  # os.access lies for root and for read-only mounts
                f.write("ok")
            os.remove(probe)
        except OSError as e:
            raise StoreError(MomentStore._os_reason(e, path)) from e

    @staticmethod
    def _os_reason(e: OSError, path: str = "") -> str:
        where = path or getattr(e, "filename", "") or "the memory store"
        if e.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return f"memory store directory {where} is not writable ({e.strerror}); set memory_dir to a writable one"
        if e.errno == errno.ENOSPC:
            return f"no space left for the memory store at {where}; free space or move memory_dir"
        return f"memory store at {where}: {e}"

    def _check_schema(self) -> None:
        meta = self._table.schema.metadata or {}
        version = meta.get(SCHEMA_KEY, b"").decode() or "none"
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"the memory store at {self.uri} was written with schema version {version}; this node reads "
                f"version {SCHEMA_VERSION}. Point memory_dir at a new directory (the old one is left untouched)")
        dim = int(meta.get(b"vljepa_ros.memory.dim", b"0") or 0)
        if dim != self.dim:
            raise StoreError(f"the memory store at {self.uri} holds {dim}-d embeddings, the model's are "
                             f"{self.dim}-d; point memory_dir at a new directory")

    def _vector_index_rows(self) -> int:
        try:
            for index in self._table.list_indices():
                if "embedding" in index.columns:
                    return self._table.index_stats(index.name).num_indexed_rows
        except Exception:  # noqa: BLE001 - no index is the answer
            pass
        return 0

    # ---- writing --------------------------------------------------------------
    def add(self, moments: list[Moment]) -> None:
        """Write moments in one atomic commit (raises StoreError; nothing is half-written)."""
        if not moments:
            return
        table = self._arrow(moments)
        with self._lock:
            try:
                self._table.add(table)
            except OSError as e:
                raise StoreError(self._os_reason(e, self.uri)) from e
            except Exception as e:  # noqa: BLE001
                raise StoreError(f"writing {len(moments)} moments to {self.uri} failed: {e}") from e

    def update_event(self, moment_id: int, model_id: str, text: str, action: str, action_confidence: float) -> None:
        with self._lock:
            self._table.update(where=f"id = {int(moment_id)} AND model_id = {_sql_str(model_id)}",
                               values={"text": text, "action": action,
                                       "action_confidence": float(action_confidence)})

    def _arrow(self, moments: list[Moment]):
        import pyarrow as pa

        cols = {name: [] for name in _schema(self.dim).names}
        for m in moments:
            p = m.pose
            row = {"id": m.id, "start_ns": m.start_ns, "end_ns": m.end_ns, "frame_id": m.frame_id,
                   "model_id": m.model_id, "n_frames": m.n_frames, "has_pose": p is not None,
                   "pose_frame": p.frame_id if p else "",
                   "text": m.text, "action": m.action, "action_confidence": float(m.action_confidence)}
            pos = p.position if p else (0.0, 0.0, 0.0)
            q = p.orientation if p else (0.0, 0.0, 0.0, 0.0)
            row.update(px=pos[0], py=pos[1], pz=pos[2], qx=q[0], qy=q[1], qz=q[2], qw=q[3])
            for k, v in row.items():
                cols[k].append(v)
        vectors = np.stack([np.asarray(m.embedding, np.float32).reshape(self.dim) for m in moments])
        arrays = {k: v for k, v in cols.items() if k != "embedding"}
        arrays["embedding"] = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), self.dim)
        return pa.table(arrays, schema=_schema(self.dim))

    def maintain(self) -> None:
        """Build the vector index once the table is big enough; fold new rows into it
        and compact small commits. Can take minutes at 10^6 rows: run it off the hot path."""
        with self._lock:
            n = self._table.count_rows()
        if n >= self.index_min_rows and self._indexed_rows == 0:
            table = self._db.open_table(TABLE)  # a second handle: queries keep the lock-free path
            # IVF-PQ, sqrt(n) partitions; queries re-score the PQ candidates exactly
            # (refine_factor). IVF_HNSW_SQ took 455 s to build at 10^5 on 2 cores.
            from lancedb.index import Bitmap, BTree, IvfPq

            # sqrt(n) partitions capped at 256: k-means training grows with partitions^2 and
            # 1,000 partitions at 10^6 rows would take ~30 min on 2 cores (tools/bench_memory_store.py)
            table.create_index("embedding", config=IvfPq(distance_type="cosine",
                                                          num_partitions=int(min(256, np.sqrt(n))),
                                                          num_sub_vectors=32))
            table.create_index("start_ns", config=BTree())
            table.create_index("model_id", config=Bitmap())  # few distinct values
        else:
            table = self._db.open_table(TABLE)
            table.optimize()
        with self._lock:
            self._table = self._db.open_table(TABLE)
            self._indexed_rows = self._vector_index_rows()

    # ---- reading --------------------------------------------------------------
    def count(self, model_id: str | None = None) -> int:
        with self._lock:
            return self._table.count_rows(None if model_id is None else f"model_id = {_sql_str(model_id)}")

    def model_counts(self) -> dict[str, int]:
        with self._lock:
            t = self._table.search().select(["model_id"]).limit(None).to_arrow()
        import pyarrow.compute as pc

        return {str(v["values"]): int(v["counts"]) for v in pc.value_counts(t.column("model_id")).to_pylist()}

    def stamp_range(self, model_id: str) -> tuple[int, int] | None:
        import pyarrow.compute as pc

        with self._lock:
            t = (self._table.search().where(f"model_id = {_sql_str(model_id)}").select(["start_ns", "end_ns"])
                 .limit(None).to_arrow())
        if t.num_rows == 0:
            return None
        return int(pc.min(t.column("start_ns")).as_py()), int(pc.max(t.column("end_ns")).as_py())

    def disk_bytes(self) -> int:
        if not _is_local(self.uri):
            return 0
        return dir_bytes(self.uri)

    def search(self, query: np.ndarray, model_id: str, top_k: int, window_ns: tuple[int, int] | None = None,
               region: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None) -> list[Hit]:
        """Top-k moments of ``model_id`` by cosine similarity to ``query``; a window keeps the
        moments that overlap [t0, t1]; a region those whose camera position lies in the box."""
        where = [f"model_id = {_sql_str(model_id)}"]
        if window_ns is not None:
            where.append(f"start_ns <= {int(window_ns[1])} AND end_ns >= {int(window_ns[0])}")
        if region is not None:
            lo, hi = region
            where.append("has_pose")
            for axis, a, b in zip(("px", "py", "pz"), lo, hi):
                where.append(f"{axis} >= {float(a)!r} AND {axis} <= {float(b)!r}")
        q = np.asarray(query, np.float32).reshape(self.dim)
        with self._lock:
            search = (self._table.search(q, vector_column_name="embedding").metric("cosine")
                      .where(" AND ".join(where), prefilter=True).limit(int(top_k)))
            if self._indexed_rows:
                search = search.nprobes(NPROBES).refine_factor(REFINE)  # ANN candidates re-scored exactly
            rows = search.to_arrow()
        return [Hit(m, 1.0 - d) for m, d in zip(_moments(rows), rows.column("_distance").to_pylist())]

    def moments_between(self, model_id: str, start_lo_ns: int, start_hi_ns: int, limit: int) -> list[Moment]:
        """Moments of one model that started in [lo, hi], the latest ``limit`` of them, latest first."""
        with self._lock:
            rows = self._table.search().where(
                f"model_id = {_sql_str(model_id)} AND start_ns >= {int(start_lo_ns)} "
                f"AND start_ns <= {int(start_hi_ns)}").limit(None).to_arrow()
        if rows.num_rows > limit:
            import pyarrow.compute as pc

            rows = rows.take(pc.sort_indices(rows, [("start_ns", "descending")])[:limit])
        return sorted(_moments(rows), key=lambda m: -m.start_ns)

    def scan(self, model_id: str, columns: list[str] | None = None):
        """All rows of one model (arrow table), for evaluation and export."""
        with self._lock:
            q = self._table.search().where(f"model_id = {_sql_str(model_id)}")
            return (q.select(columns) if columns else q).limit(None).to_arrow()

    def close(self) -> None:
        pass  # every write is already committed; nothing buffered here


def _moments(rows) -> list[Moment]:
    d = rows.to_pydict()
    out = []
    for i in range(rows.num_rows):
        pose = None
        if d["has_pose"][i]:
            pose = Pose(d["pose_frame"][i], (d["px"][i], d["py"][i], d["pz"][i]),
                        (d["qx"][i], d["qy"][i], d["qz"][i], d["qw"][i]))
        out.append(Moment(start_ns=d["start_ns"][i], end_ns=d["end_ns"][i], frame_id=d["frame_id"][i],
                          embedding=np.asarray(d["embedding"][i], np.float32), model_id=d["model_id"][i],
                          n_frames=d["n_frames"][i], pose=pose, text=d["text"][i], action=d["action"][i],
                          action_confidence=d["action_confidence"][i]))
    return out
