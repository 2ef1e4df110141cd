"""Compare embedded vector stores for the semantic memory (issue 12): insert
rate, query p50/p95, disk size, and what a kill -9 mid-write leaves behind.

    python tools/bench_memory_store.py --engines milvus,lancedb,qdrant,sqlite_vec \
        --sizes 10000,100000,1000000 --json reports/bench_memory_store.json

The other engines are not project requirements: ``pip install qdrant-client==1.20.0
milvus-lite==3.2.2 pymilvus==3.0.2 sqlite-vec==0.1.9`` to rerun them (check
with ``pip install --dry-run`` that nothing pulls CUDA packages).

Synthetic moments: 256-d unit float32 vectors (the model's dimension) drawn
around 2,000 recurring states (``--data clustered``, the default; ``uniform``
for independent random directions), a start stamp, a camera position and a
model id. recall@10 is measured against an exact numpy scan. Each query is
a top-10 cosine search restricted to one model id (as every memory query is),
half of them also to a time window holding ~10 % of the moments. Every engine
is used through its own client, the way its documentation shows, with an
index where it has one. Sizes an engine cannot reach in the time limit are
reported as skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))  # run from a checkout
from vljepa_ros.memory.store import dir_bytes  # noqa: E402  (the store's own disk measure)

DIM = 256
MODEL = "tabletop@000000000000"
BATCH = 10_000
INDEX_MIN_ROWS = 50_000   # LanceDB: exact scan below, IVF-PQ from here on
NPROBES, REFINE = 20, 5


def partitions(n: int) -> int:
    # sqrt(n), capped: k-means training cost grows with partitions^2 (256 train
    # vectors each); at 10^6 rows 1,000 partitions would take ~30 min on 2 cores
    return int(min(256, np.sqrt(n)))


# "clustered" (default): each moment is one of STATES recurring scene states plus noise
# (cosine distance ~0.02 to its state: below the change detector's 0.05), as a
# robot's memory is; a query is a state's direction plus other noise. "uniform":
# independent random directions, the adversarial case for any ANN index (every
# neighbour is nearly as far as every other), which no moment stream produces.
STATES = 2000
DATA = "clustered"


def _centres() -> np.ndarray:
    c = np.random.default_rng(12345).standard_normal((STATES, DIM)).astype(np.float32)
    return c / np.linalg.norm(c, axis=1, keepdims=True)


def _noisy(base: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    v = base + scale * rng.standard_normal(base.shape).astype(np.float32) / np.sqrt(DIM)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _rows(start: int, n: int, rng: np.random.Generator):
    if DATA == "clustered":
        v = _noisy(_centres()[rng.integers(0, STATES, n)], rng, 0.2)
    else:
        v = rng.standard_normal((n, DIM)).astype(np.float32)
        v /= np.linalg.norm(v, axis=1, keepdims=True)
    ids = np.arange(start, start + n, dtype=np.int64)
    stamps = 1.0e9 + ids * 3.0  # one moment every 3 s
    xyz = rng.uniform(-5, 5, (n, 3)).astype(np.float32)
    return ids, stamps, xyz, v


# ---------------------------------------------------------------------------
# Engines: open(path), insert(batch), flush(), build_index(), query(vec, window), close()
# ---------------------------------------------------------------------------


class Milvus:
    name = "milvus"

    def __init__(self, path: str):
        from pymilvus import DataType, MilvusClient

        self.client = MilvusClient(os.path.join(path, "memory.db"))
        if not self.client.has_collection("moments"):
            schema = self.client.create_schema(auto_id=False)
            schema.add_field("id", DataType.INT64, is_primary=True)
            schema.add_field("start_s", DataType.DOUBLE)
            schema.add_field("x", DataType.FLOAT)
            schema.add_field("y", DataType.FLOAT)
            schema.add_field("model_id", DataType.VARCHAR, max_length=128)
            schema.add_field("embedding", DataType.FLOAT_VECTOR, dim=DIM)
            index = self.client.prepare_index_params()
            index.add_index("embedding", index_type="HNSW", metric_type="COSINE", params={"M": 16,
                                                                                        "efConstruction": 100})
            self.client.create_collection("moments", schema=schema, index_params=index)
        self.client.load_collection("moments")

    def insert(self, ids, stamps, xyz, v):
        self.client.insert("moments", [
            {"id": int(i), "start_s": float(s), "x": float(p[0]), "y": float(p[1]), "model_id": MODEL,
             "embedding": e} for i, s, p, e in zip(ids, stamps, xyz, v)])

    def flush(self):
        self.client.flush("moments")

    def build_index(self):
        pass  # declared with the collection; built per segment on flush

    def query(self, vec, window):
        expr = f'model_id == "{MODEL}"'
        if window:
            expr += f" and start_s >= {window[0]} and start_s <= {window[1]}"
        r = self.client.search("moments", data=[vec.tolist()], filter=expr, limit=10, anns_field="embedding",
                               search_params={"metric_type": "COSINE", "params": {"ef": 64}},
                               output_fields=["start_s"])
        return [h["id"] for h in r[0]]

    def count(self):
        return int(self.client.query("moments", filter="id >= 0", output_fields=["count(*)"])[0]["count(*)"])

    def close(self):
        self.client.close()


class Lance:
    name = "lancedb"

    def __init__(self, path: str):
        import lancedb

        self.db = lancedb.connect(path)
        self.table = self.db.open_table("moments") if "moments" in self.db.table_names() else None

    def insert(self, ids, stamps, xyz, v):
        import pyarrow as pa

        batch = pa.table({
            "id": ids, "start_s": stamps, "x": xyz[:, 0], "y": xyz[:, 1],
            "model_id": pa.array([MODEL] * len(ids)),
            "embedding": pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), DIM)})
        if self.table is None:
            self.table = self.db.create_table("moments", data=batch)
        else:
            self.table.add(batch)

    def flush(self):
        pass  # every add() is one atomic commit

    def build_index(self):
        # IVF-PQ (LanceDB's default vector index) with sqrt(n) partitions; the
        # PQ candidates are re-scored exactly (refine_factor) at query time.
        # (IVF_HNSW_SQ was tried first: 455 s to build at 10^5 on these cores.)
        from lancedb.index import Bitmap, BTree, IvfPq

        n = self.table.count_rows()
        self.indexed = n >= INDEX_MIN_ROWS
        if self.indexed:
            self.table.create_index("embedding", config=IvfPq(distance_type="cosine",
                                                               num_partitions=partitions(n), num_sub_vectors=32))
        self.table.create_index("start_s", config=BTree())
        self.table.create_index("model_id", config=Bitmap())

    def query(self, vec, window):
        where = f"model_id = '{MODEL}'"
        if window:
            where += f" AND start_s >= {window[0]} AND start_s <= {window[1]}"
        q = self.table.search(vec, vector_column_name="embedding").metric("cosine").where(where, prefilter=True)
        if getattr(self, "indexed", False) or self.table.list_indices():
            q = q.nprobes(NPROBES).refine_factor(REFINE)
        return [int(i) for i in q.limit(10).select(["id"]).to_arrow()["id"].to_pylist()]

    def count(self):
        return self.table.count_rows()

    def close(self):
        pass


class Qdrant:
    name = "qdrant"

    def __init__(self, path: str):
        from qdrant_client import QdrantClient, models

        self.m = models
        self.client = QdrantClient(path=path)
        if not self.client.collection_exists("moments"):
            self.client.create_collection("moments", vectors_config=models.VectorParams(
                size=DIM, distance=models.Distance.COSINE))

    def insert(self, ids, stamps, xyz, v):
        self.client.upsert("moments", points=self.m.Batch(
            ids=[int(i) for i in ids], vectors=v.tolist(),
            payloads=[{"start_s": float(s), "x": float(p[0]), "y": float(p[1]), "model_id": MODEL}
                      for s, p in zip(stamps, xyz)]))

    def flush(self):
        pass  # local mode writes each upsert to its sqlite file

    def build_index(self):
        pass  # local mode has no index (brute force)

    def query(self, vec, window):
        m = self.m
        must = [m.FieldCondition(key="model_id", match=m.MatchValue(value=MODEL))]
        if window:
            must.append(m.FieldCondition(key="start_s", range=m.Range(gte=window[0], lte=window[1])))
        r = self.client.query_points("moments", query=vec.tolist(), query_filter=m.Filter(must=must), limit=10)
        return [p.id for p in r.points]

    def count(self):
        return self.client.count("moments").count

    def close(self):
        self.client.close()


class SqliteVec:
    name = "sqlite_vec"

    def __init__(self, path: str):
        import sqlite3

        import sqlite_vec

        self.db = sqlite3.connect(os.path.join(path, "memory.sqlite"))
        self.db.enable_load_extension(True)
        sqlite_vec.load(self.db)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS moments USING vec0(id integer primary key, "
                        f"embedding float[{DIM}] distance_metric=cosine, model_id text, start_s float, "
                        "x float, y float)")

    def insert(self, ids, stamps, xyz, v):
        self.db.executemany("INSERT INTO moments(id, embedding, model_id, start_s, x, y) VALUES (?,?,?,?,?,?)",
                            [(int(i), e.tobytes(), MODEL, float(s), float(p[0]), float(p[1]))
                             for i, s, p, e in zip(ids, stamps, xyz, v)])
        self.db.commit()

    def flush(self):
        pass  # committed per batch

    def build_index(self):
        pass  # vec0 is brute force

    def query(self, vec, window):
        sql = "SELECT id FROM moments WHERE embedding MATCH ? AND k = 10 AND model_id = ?"
        args = [vec.tobytes(), MODEL]
        if window:
            sql += " AND start_s >= ? AND start_s <= ?"
            args += [window[0], window[1]]
        return [r[0] for r in self.db.execute(sql, args)]

    def count(self):
        return self.db.execute("SELECT count(*) FROM moments").fetchone()[0]

    def close(self):
        self.db.close()


ENGINES = {e.name: e for e in (Milvus, Lance, Qdrant, SqliteVec)}


def run_size(engine_cls, n: int, n_queries: int, rng: np.random.Generator, time_limit_s: float) -> dict:
    path = tempfile.mkdtemp(prefix=f"memstore-{engine_cls.name}-")
    try:
        store = engine_cls(path)
        t0 = time.perf_counter()
        done = 0
        vectors = np.empty((n, DIM), np.float32)
        while done < n:
            b = min(BATCH, n - done)
            rows = _rows(done, b, rng)
            vectors[done:done + b] = rows[3]
            store.insert(*rows)
            done += b
            if time.perf_counter() - t0 > time_limit_s and done < n:
                store.close()
                return {"n": n, "skipped": f"insert too slow: {done:,} moments in {time.perf_counter() - t0:.0f} s "
                                           f"({done / (time.perf_counter() - t0):.0f}/s)"}
        store.flush()
        insert_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        store.build_index()
        index_s = time.perf_counter() - t1
        store.close()
        t2 = time.perf_counter()
        store = engine_cls(path)  # reopen: what a restarted node pays
        open_s = time.perf_counter() - t2
        count = store.count()
        if DATA == "clustered":
            queries = _noisy(_centres()[rng.integers(0, STATES, n_queries)], rng, 0.3)
        else:
            queries = rng.standard_normal((n_queries, DIM)).astype(np.float32)
            queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        span = n * 3.0
        lat = []
        recall = []
        for k, q in enumerate(queries):
            window = None
            if k % 2:
                a = 1.0e9 + rng.uniform(0, 0.9) * span
                window = (a, a + 0.1 * span)
            t = time.perf_counter()
            got = store.query(q, window)
            lat.append((time.perf_counter() - t) * 1e3)
            if window is None:
                # recall@10 against an exact numpy scan, ties within 1e-3 of the 10th score counted
                # as hits (clustered data has many near-equal members of the query's state)
                scores = vectors @ q
                tenth = np.partition(-scores, 9)[9] * -1
                recall.append(sum(scores[i] >= tenth - 1e-3 for i in got[:10]) / 10)
        lat = np.array(lat[2:])  # the first queries load caches
        store.close()
        return {"n": n, "count": count, "insert_per_s": n / insert_s, "index_s": index_s, "open_s": open_s,
                "query_p50_ms": float(np.percentile(lat, 50)), "query_p95_ms": float(np.percentile(lat, 95)),
                "recall_at_10": float(np.mean(recall)), "disk_mb": dir_bytes(path) / 1e6}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _writer(engine: str, path: str) -> None:
    """Child process: insert batches of 1,000 forever, printing each flushed total."""
    store = ENGINES[engine](path)
    rng = np.random.default_rng(1)
    done = 0
    while True:
        store.insert(*_rows(done, 1000, rng))
        store.flush()
        done += 1000
        print(done, flush=True)


def kill9(engine: str, kill_after: int = 5) -> dict:
    """Kill a writer with SIGKILL after `kill_after` flushed batches; reopen and count."""
    path = tempfile.mkdtemp(prefix=f"memkill-{engine}-")
    try:
        proc = subprocess.Popen([sys.executable, __file__, "--writer", engine, "--path", path],
                                stdout=subprocess.PIPE, text=True)
        flushed = 0
        for line in proc.stdout:
            flushed = int(line)
            if flushed >= kill_after * 1000:
                break
        proc.send_signal(signal.SIGKILL)  # mid-write of the next batch
        proc.wait()
        try:
            store = ENGINES[engine](path)
            count = store.count()
            hits = store.query(np.ones(DIM, np.float32) / np.sqrt(DIM), None)
            store.close()
            return {"flushed": flushed, "after_restart": count, "query_ok": len(hits) == 10,
                    "ok": count >= flushed and len(hits) == 10}
        except Exception as e:  # noqa: BLE001 - the result is what we report
            return {"flushed": flushed, "error": f"{type(e).__name__}: {e}", "ok": False}
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--insert-limit-s", type=float, default=600.0, help="give up a size after this long inserting")
    ap.add_argument("--kill9", action="store_true", help="also run the kill -9 test per engine")
    ap.add_argument("--data", default="clustered", choices=("clustered", "uniform"))
    ap.add_argument("--json", default="")
    ap.add_argument("--writer", default="", help=argparse.SUPPRESS)
    ap.add_argument("--path", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    global DATA
    DATA = args.data
    if args.writer:
        _writer(args.writer, args.path)
        return 0
    results = {"machine": {"cpus": os.cpu_count(), "load_1min": os.getloadavg()[0]}, "data": args.data,
               "date": time.strftime("%Y-%m-%d"), "engines": {}}
    for name in args.engines.split(","):
        rng = np.random.default_rng(0)
        out = results["engines"][name] = {"sizes": []}
        for n in (int(s) for s in args.sizes.split(",")):
            r = run_size(ENGINES[name], n, args.queries, rng, args.insert_limit_s)
            out["sizes"].append(r)
            print(name, json.dumps(r), flush=True)
            if "skipped" in r:
                break
        if args.kill9:
            out["kill9"] = kill9(name)
            print(name, "kill -9:", json.dumps(out["kill9"]), flush=True)
    if args.json:
        prev = {}
        if os.path.exists(args.json):
            with open(args.json) as f:
                prev = json.load(f)
        prev.setdefault("engines", {}).update(results["engines"])
        prev.update({k: v for k, v in results.items() if k != "engines"})
        os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
        with open(args.json, "w") as f:
            json.dump(prev, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
