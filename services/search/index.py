"""The FAISS index of the search service: one index per time shard, on disk, checked at start.

Each shard (``shard_hours`` of first-seen time) is an exact inner-product index (``Flat``) until it
holds ``exact_max_vectors``; it is then rebuilt as HNSW or IVF (approximate, much faster at
millions of vectors) in a background thread, while the exact index keeps serving. Vector ids are
the feature store's ids, so a search hit leads straight to its track. Retention drops whole shards.

Each shard is saved as ``shard-<start>.faiss`` with a ``.json`` sidecar (kind, dimension, embedder,
the highest id it holds, its vector count, the file's SHA-256). At start a shard whose file is
missing, unreadable, of another embedder, or that disagrees with the store is rebuilt from the store
and reported — an index is never silently served empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from retina.services.core.config import SearchConfig
from retina.services.search.store import FeatureStore

log = logging.getLogger(__name__)


@dataclass
class _Shard:
    start: int
    index: faiss.Index
    kind: str  # "flat", "hnsw" or "ivf"
    max_id: int = 0
    dirty: bool = False
    converting: threading.Thread | None = None  # building its approximate index in the background


@dataclass(frozen=True)
class LoadReport:
    """What happened to each shard at start: loaded as saved, or rebuilt (with the reason)."""

    loaded: list[int]
    rebuilt: dict[int, str]


class ShardedIndex:
    """Time-sharded FAISS indexes over L2-normalised vectors, searched by inner product."""

    def __init__(self, directory: Path, dim: int, embedder: str, config: SearchConfig):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.dim = dim
        self.embedder = embedder
        self.config = config
        self._shards: dict[int, _Shard] = {}
        self._lock = threading.RLock()

    # -- building ------------------------------------------------------------------------------

    def _new_flat(self) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))

    def _approximate(self, ids: np.ndarray, vectors: np.ndarray) -> tuple[faiss.Index, str]:
        """An approximate index over the given vectors (HNSW or IVF, as configured)."""
        if self.config.approximate_index == "ivf":
            nlist = int(max(16, min(65536, 4 * np.sqrt(len(ids)))))
            quantizer = faiss.IndexFlatIP(self.dim)
            index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(len(vectors), min(len(vectors), nlist * 64), replace=False)]
            index.train(sample)
            index.add_with_ids(vectors, ids)
            return index, "ivf"
        hnsw = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = self.config.hnsw_ef_construction
        index = faiss.IndexIDMap2(hnsw)
        index.add_with_ids(vectors, ids)
        return index, "hnsw"

    def build_shard(self, start: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Replace a shard's index with one over exactly these vectors."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(ids) > self.config.exact_max_vectors:
            index, kind = self._approximate(ids, vectors)
        else:
            index, kind = self._new_flat(), "flat"
            if len(ids):
                index.add_with_ids(vectors, ids)
        with self._lock:
            self._shards[start] = _Shard(start, index, kind, int(ids.max()) if len(ids) else 0, dirty=True)

    def rebuild_shard(self, store: FeatureStore, start: int) -> int:
        """Rebuild one shard from the store; return its vector count."""
        parts = list(store.vectors_of_shard(start))
        ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        vectors = np.vstack([p[1] for p in parts]) if parts else np.zeros((0, self.dim), np.float32)
        self.build_shard(start, ids, vectors)
        return len(ids)

    def add(self, start: int, vector_id: int, vector: np.ndarray) -> None:
        """Add one vector to its shard (creating the shard); a full exact shard turns approximate."""
        with self._lock:
            shard = self._shards.get(start)
            if shard is None:
                shard = self._shards[start] = _Shard(start, self._new_flat(), "flat")
            shard.index.add_with_ids(
                np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), np.array([vector_id], np.int64)
            )
            shard.max_id = max(shard.max_id, vector_id)
            shard.dirty = True
            full = shard.kind == "flat" and shard.index.ntotal > self.config.exact_max_vectors
            if full and shard.converting is None:
                ids = faiss.vector_to_array(shard.index.id_map).astype(np.int64)
                vectors = shard.index.index.reconstruct_n(0, shard.index.ntotal)
                shard.converting = threading.Thread(
                    target=self._convert, args=(shard, ids, vectors), name=f"index-{start}", daemon=True
                )
                shard.converting.start()

    def _convert(self, shard: _Shard, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Build a full shard's approximate index while the exact one keeps serving, then swap."""
        started = time.perf_counter()
        index, kind = self._approximate(ids, vectors)  # minutes at a million vectors: outside the lock
        with self._lock:
            current = faiss.vector_to_array(shard.index.id_map).astype(np.int64)
            newer = np.nonzero(current > ids.max())[0]  # added while it was being built
            if len(newer):
                index.add_with_ids(
                    np.vstack([shard.index.index.reconstruct(int(i)) for i in newer]), current[newer]
                )
            shard.index, shard.kind, shard.dirty, shard.converting = index, kind, True, None
        log.info(
            "index shard became approximate",
            extra={"shard": shard.start, "kind": kind, "vectors": int(index.ntotal),
                   "seconds": round(time.perf_counter() - started, 1)},
        )  # fmt: skip

    def wait_for_conversions(self, timeout: float | None = None) -> None:
        """Wait until no shard is being converted (tests, orderly shutdown)."""
        with self._lock:
            threads = [s.converting for s in self._shards.values() if s.converting is not None]
        for thread in threads:
            thread.join(timeout)

    def drop(self, start: int) -> None:
        """Forget a shard (retention) and delete its files."""
        with self._lock:
            self._shards.pop(start, None)
            for path in self._paths(start):
                path.unlink(missing_ok=True)

    # -- persistence ---------------------------------------------------------------------------

    def _paths(self, start: int) -> tuple[Path, Path]:
        return self.directory / f"shard-{start}.faiss", self.directory / f"shard-{start}.json"

    def save(self) -> int:
        """Write every changed shard (atomically: temporary file, then rename); return how many.

        Only the in-memory copy is taken under the lock; hashing and writing happen outside it,
        so searches and new records do not wait for the disk.
        """
        with self._lock:
            dirty = [s for s in self._shards.values() if s.dirty]
            snapshots = []
            for shard in dirty:
                data = faiss.serialize_index(shard.index)
                snapshots.append((shard.start, shard.kind, shard.max_id, int(shard.index.ntotal), data))
                shard.dirty = False
        for start, kind, max_id, ntotal, data in snapshots:
            index_path, meta_path = self._paths(start)
            payload = data.tobytes()
            meta = {"kind": kind, "dim": self.dim, "embedder": self.embedder, "max_id": max_id,
                    "ntotal": ntotal, "sha256": hashlib.sha256(payload).hexdigest()}  # fmt: skip
            _write_atomically(index_path, payload)
            _write_atomically(meta_path, json.dumps(meta).encode())
        return len(snapshots)

    def load(self, store: FeatureStore) -> LoadReport:
        """Load every shard the store has, checking each file; rebuild what is missing or wrong."""
        loaded, rebuilt = [], {}
        for start in store.shards():
            problem = self._load_shard(store, start)
            if problem is None:
                loaded.append(start)
                shard = self._shards[start]
                for ids, vectors in store.vectors_of_shard(start, after_id=shard.max_id):
                    for vector_id, vector in zip(ids, vectors, strict=True):  # arrived after the last save
                        self.add(start, int(vector_id), vector)
            else:
                count = self.rebuild_shard(store, start)
                rebuilt[start] = problem
                log.warning(
                    "index shard rebuilt from the feature store",
                    extra={"shard": start, "reason": problem, "vectors": count},
                )
        for path in self.directory.glob("shard-*.faiss"):  # files of shards the store no longer has
            start = int(path.stem.removeprefix("shard-"))
            if start not in self._shards:
                self.drop(start)
        self.save()
        return LoadReport(loaded, rebuilt)

    def _load_shard(self, store: FeatureStore, start: int) -> str | None:
        """Load a saved shard; return why it cannot be used, or None."""
        index_path, meta_path = self._paths(start)
        if not index_path.exists() or not meta_path.exists():
            return "index file missing"
        try:
            meta = json.loads(meta_path.read_text())
            data = index_path.read_bytes()
        except (OSError, ValueError) as exc:
            return f"unreadable: {exc}"
        if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
            return "index file corrupt (checksum mismatch)"
        if meta.get("dim") != self.dim or meta.get("embedder") != self.embedder:
            return f"built with {meta.get('embedder')} ({meta.get('dim')}-d), now {self.embedder}"
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            return f"index file unreadable: {exc}"
        expected = store.shard_summary(start, meta["max_id"])
        if index.ntotal != expected or meta.get("ntotal") != expected:
            return f"holds {index.ntotal} vectors, the store has {expected}"
        with self._lock:
            self._shards[start] = _Shard(start, index, meta["kind"], int(meta["max_id"]))
        return None

    # -- searching -----------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, shards: list[int] | None = None) -> list[tuple[int, float]]:
        """Best (vector id, score) pairs over the given shards; several queries merge by max score."""
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        best: dict[int, float] = {}
        with self._lock:
            targets = [s for start, s in self._shards.items() if shards is None or start in shards]
            for shard in targets:
                if shard.index.ntotal == 0:
                    continue
                params = self._params(shard)
                scores, ids = shard.index.search(queries, min(k, shard.index.ntotal), params=params)
                for row_scores, row_ids in zip(scores, ids, strict=True):
                    for score, vector_id in zip(row_scores, row_ids, strict=True):
                        if vector_id >= 0 and score > best.get(int(vector_id), -np.inf):
                            best[int(vector_id)] = float(score)
        return sorted(best.items(), key=lambda item: -item[1])[:k]

    def _params(self, shard: _Shard) -> faiss.SearchParameters | None:
        if shard.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=self.config.hnsw_ef_search)
        if shard.kind == "ivf":
            return faiss.SearchParametersIVF(nprobe=self.config.ivf_nprobe)
        return None

    def shard_starts(self) -> list[int]:
        with self._lock:
            return sorted(self._shards)

    def stats(self) -> list[tuple[int, str, int]]:
        """(start, kind, vectors) of every shard."""
        with self._lock:
            return [(s.start, s.kind, int(s.index.ntotal)) for _, s in sorted(self._shards.items())]

    @property
    def ntotal(self) -> int:
        with self._lock:
            return sum(int(s.index.ntotal) for s in self._shards.values())


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
