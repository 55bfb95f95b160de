"""The vector index of the search service: one shard per time span, vectors in memory, filters exact.

Each shard (``shard_hours`` of first-seen time) keeps every vector of its span in memory, in id order
(a ``Flat`` index, one row per vector), next to a column of its track's attributes per row (camera,
family, first/last seen, sharing scope, colours; categorical values as small integer codes) and
posting lists of the rows of each camera and of each hour of first sighting. So:

- a filtered search (department scope, cameras, time, families, colours) takes the shorter posting
  list, checks the other attributes of those rows with a few vectorised comparisons, and scores the
  rows that pass exactly (a SIMD pass over them, on all cores when many) when at most
  ``exact_filtered_max_vectors``; a wider selection searches the approximate index with an
  ``IDSelectorBitmap`` of the rows, so only passing rows are returned (no filter-after-search);
- a shard above ``exact_max_vectors`` gets an approximate index over its rows, built in a background
  thread while the exact one serves: IVF with 8-bit scalar-quantised codes (``ivf``, default), whose
  ``ivf_nprobe`` nearest lists are scanned and the best ``rerank_factor`` × k candidates re-scored
  exactly from the in-memory vectors, or HNSW (``hnsw``).

Vector ids are the feature store's ids, so a hit leads straight to its track. Retention drops whole
shards. Each shard is saved as ``shard-<start>.faiss`` (its approximate index, or its exact one) with
a ``.json`` sidecar (kind, dimension, embedder, the highest id it holds, its vector count, the file's
SHA-256). At start a shard whose file is missing, unreadable, of another embedder, or that disagrees
with the store is rebuilt from the store and reported — an index is never silently served empty. The
attribute columns (and an approximate shard's exact vectors) are read from the store at start.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Hashable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from retina.services.core.config import SearchConfig
from retina.services.search.store import EVERY_DEPARTMENT, FeatureStore, Filters, RowMeta

log = logging.getLogger(__name__)

GATHER_MAX_ROWS = 4096  # up to this many rows are scored on one thread (scattered ones on a copy)
SCORING_THREADS = max(1, min(4, os.cpu_count() or 1))
_SCORING = ThreadPoolExecutor(max_workers=SCORING_THREADS, thread_name_prefix="score")
_CODE_COLUMNS = ("camera", "family", "scope", "colours")
_TIME_COLUMNS = ("first_seen", "last_seen")


@dataclass(frozen=True)
class Where:
    """Which rows a search may return: those the department may see that pass the filters."""

    department: str
    filters: Filters


class _Codes:
    """A growing vocabulary: each distinct value gets a small integer code (0: unknown)."""

    def __init__(self) -> None:
        self._codes: dict[Hashable, int] = {}
        self.values: list[Hashable | None] = [None]

    def code(self, value: Hashable) -> int:
        code = self._codes.get(value)
        if code is None:
            code = self._codes[value] = len(self.values)
            self.values.append(value)
        return code

    def lut(self, passes: Callable[[Hashable], bool]) -> np.ndarray:
        """A lookup table code → passes (unknown never passes)."""
        return np.array([v is not None and passes(v) for v in self.values], dtype=bool)


class _Rows:
    """A growing list of row numbers (one posting list)."""

    def __init__(self) -> None:
        self.n, self._rows = 0, np.zeros(8, np.int64)

    def extend(self, rows: np.ndarray) -> None:
        if self.n + len(rows) > len(self._rows):
            self._rows = np.concatenate([self._rows[: self.n], np.zeros(max(len(rows), self.n), np.int64)])
        self._rows[self.n : self.n + len(rows)] = rows
        self.n += len(rows)

    def view(self) -> np.ndarray:
        return self._rows[: self.n]


class _Columns:
    """The per-row arrays of a shard (ids and attribute codes), grown by doubling, with posting lists
    of the rows of each camera and of each hour of first sighting (filters then touch only those)."""

    def __init__(self) -> None:
        self.n = 0
        self.by_camera: dict[int, _Rows] = {}
        self.by_hour: dict[int, _Rows] = {}
        self.longest = 0.0  # the longest track (last - first seen): how far back a time filter looks
        self.unknown = 0  # rows added without attributes (they pass no filter)
        self._arrays = {"ids": np.zeros(16, np.int64)}
        self._arrays.update({name: np.zeros(16, np.int32) for name in _CODE_COLUMNS})
        self._arrays.update({name: np.zeros(16, np.float64) for name in _TIME_COLUMNS})

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name][: self.n]

    def append(self, ids: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        if len(ids) == 0:
            return
        end = self.n + len(ids)
        capacity = len(self._arrays["ids"])
        if end > capacity:
            capacity = max(end, 2 * capacity)
            for name, array in self._arrays.items():
                grown = np.zeros(capacity, array.dtype)
                grown[: self.n] = array[: self.n]
                self._arrays[name] = grown
        self._arrays["ids"][self.n : end] = ids
        for name in (*_CODE_COLUMNS, *_TIME_COLUMNS):
            self._arrays[name][self.n : end] = columns.get(name, 0)
        self.unknown += int(np.count_nonzero(self._arrays["scope"][self.n : end] == 0))
        rows = np.arange(self.n, end, dtype=np.int64)
        self._post(self.by_camera, self._arrays["camera"][self.n : end], rows)
        self._post(self.by_hour, (self._arrays["first_seen"][self.n : end] // 3600).astype(np.int64), rows)
        spans = self._arrays["last_seen"][self.n : end] - self._arrays["first_seen"][self.n : end]
        self.longest = max(self.longest, float(spans.max()))
        self.n = end

    @staticmethod
    def _post(postings: dict[int, _Rows], keys: np.ndarray, rows: np.ndarray) -> None:
        for key in np.unique(keys):
            postings.setdefault(int(key), _Rows()).extend(rows[keys == key])

    def set(self, rows: np.ndarray, columns: dict[str, np.ndarray | int | float]) -> None:
        """New attributes for some rows (a track's: its camera and first sighting never change)."""
        for name, value in columns.items():
            self._arrays[name][rows] = value
        spans = self._arrays["last_seen"][rows] - self._arrays["first_seen"][rows]
        self.longest = max(self.longest, float(spans.max()))

    def candidates(self, filters: Filters, camera_codes: np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """Rows that may pass the camera and time filters, from the shorter of their posting lists,
        and which ("camera" or "time"); (None, "") when there is no such filter."""
        options = {}
        if camera_codes is not None:
            options["camera"] = [self.by_camera[c] for c in camera_codes if c in self.by_camera]
        if filters.start is not None or filters.end is not None:
            low = -np.inf if filters.start is None else (filters.start - self.longest) // 3600
            high = np.inf if filters.end is None else filters.end // 3600
            options["time"] = [rows for hour, rows in self.by_hour.items() if low <= hour <= high]
        if not options:
            return None, ""
        used = min(options, key=lambda name: sum(rows.n for rows in options[name]))
        lists = [rows.view() for rows in options[used]]
        return (np.concatenate(lists) if lists else np.zeros(0, np.int64)), used


@dataclass
class _Shard:
    start: int
    flat: faiss.IndexFlatIP  # every vector of the shard, row = position in id order
    columns: _Columns = field(default_factory=_Columns)
    approx: faiss.Index | None = None  # over row numbers, once the shard is big
    kind: str = "flat"  # "flat", "hnsw" or "ivf"
    max_id: int = 0
    dirty: bool = False
    converting: threading.Thread | None = None  # building its approximate index in the background

    def vectors(self) -> np.ndarray:
        """The rows as a (n, dim) view of the exact index's storage (valid until the next add)."""
        n, dim = int(self.flat.ntotal), self.flat.d
        if n == 0:
            return np.zeros((0, dim), np.float32)
        return faiss.rev_swig_ptr(self.flat.get_xb(), n * dim).reshape(n, dim)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the given vector ids (ids not in the shard are left out)."""
        held = self.columns["ids"]
        if len(held) == 0:
            return np.zeros(0, np.int64)
        rows = np.minimum(np.searchsorted(held, ids), len(held) - 1)
        return rows[held[rows] == ids]


@dataclass(frozen=True)
class LoadReport:
    """What happened to each shard at start: loaded as saved, or rebuilt (with the reason)."""

    loaded: list[int]
    rebuilt: dict[int, str]


class ShardedIndex:
    """Time-sharded indexes over L2-normalised vectors, searched by inner product."""

    def __init__(self, directory: Path, dim: int, embedder: str, config: SearchConfig):
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.dim = dim
        self.embedder = embedder
        self.config = config
        self._shards: dict[int, _Shard] = {}
        self._codes = {name: _Codes() for name in _CODE_COLUMNS}
        self._lock = threading.RLock()

    # -- building ------------------------------------------------------------------------------

    def _coded(self, metas: Iterable[RowMeta | None]) -> dict[str, np.ndarray]:
        """Attribute columns of rows (codes for categorical values; unknown rows get code 0)."""
        metas = list(metas)
        columns: dict[str, list] = {name: [] for name in (*_CODE_COLUMNS, *_TIME_COLUMNS)}
        for meta in metas:
            if meta is None:
                for name in columns:
                    columns[name].append(0)
                continue
            columns["camera"].append(self._codes["camera"].code(meta.camera_id))
            columns["family"].append(self._codes["family"].code(meta.family))
            columns["scope"].append(self._codes["scope"].code(meta.scope))
            columns["colours"].append(self._codes["colours"].code(meta.colours))
            columns["first_seen"].append(meta.first_seen)
            columns["last_seen"].append(meta.last_seen)
        return {name: np.array(values) for name, values in columns.items()}

    def _approximate(self, vectors: np.ndarray) -> tuple[faiss.Index, str]:
        """An approximate index over rows 0..n-1 of these vectors (IVF or HNSW, as configured)."""
        if self.config.approximate_index == "ivf":
            # 4·√n lists, but at least 39 training points per list (what k-means needs).
            nlist = self.config.ivf_lists or int(
                max(1, min(65536, 4 * np.sqrt(len(vectors)), len(vectors) / 39))
            )
            index = faiss.IndexIVFScalarQuantizer(
                faiss.IndexFlatIP(self.dim), self.dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                faiss.METRIC_INNER_PRODUCT, False,
            )  # fmt: skip
            rng = np.random.default_rng(0)
            sample = vectors[rng.choice(len(vectors), min(len(vectors), nlist * 40), replace=False)]
            index.train(sample)
            index.add_with_ids(vectors, np.arange(len(vectors), dtype=np.int64))
            return index, "ivf"
        index = faiss.IndexHNSWFlat(self.dim, self.config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.config.hnsw_ef_construction
        index.add(vectors)
        return index, "hnsw"

    def _add_rows(self, shard: _Shard, ids: np.ndarray, vectors: np.ndarray, columns: dict) -> None:
        first = shard.columns.n
        shard.flat.add(vectors)
        shard.columns.append(ids, columns)
        if shard.approx is not None:
            rows = np.arange(first, first + len(ids), dtype=np.int64)
            if shard.kind == "ivf":
                shard.approx.add_with_ids(vectors, rows)
            else:
                shard.approx.add(vectors)  # HNSW numbers its vectors in order: ids are rows
        shard.max_id = max(shard.max_id, int(ids.max()))
        shard.dirty = True

    def _fill(
        self, shard: _Shard, store: FeatureStore, saved: tuple[int, faiss.Index, str] | None = None
    ) -> None:
        """Add a shard's rows from the store, batch by batch. ``saved`` (max id, index, kind): a loaded
        approximate index over the rows up to that id, which then takes every later row too."""
        upto_id = saved[0] if saved is not None else -1
        for ids, vectors, metas in store.rows_of_shard(shard.start):
            cut = int(np.searchsorted(ids, upto_id, side="right"))
            with self._lock:
                if cut:
                    self._add_rows(shard, ids[:cut], vectors[:cut], self._coded(metas[:cut]))
                if cut < len(ids):
                    if saved is not None and shard.approx is None:
                        shard.approx, shard.kind = saved[1], saved[2]
                    self._add_rows(shard, ids[cut:], vectors[cut:], self._coded(metas[cut:]))
        if saved is not None and shard.approx is None:
            shard.approx, shard.kind = saved[1], saved[2]

    def rebuild_shard(self, store: FeatureStore, start: int) -> int:
        """Rebuild one shard from the store (approximate when big); return its vector count."""
        shard = _Shard(start, faiss.IndexFlatIP(self.dim))
        self._fill(shard, store)
        if shard.columns.n > self.config.exact_max_vectors:
            shard.approx, shard.kind = self._approximate(shard.vectors())
        shard.dirty = True
        with self._lock:
            self._shards[start] = shard
        return shard.columns.n

    def add(self, start: int, vector_id: int, vector: np.ndarray, meta: RowMeta | None = None) -> None:
        """Add one vector (ids ascending) to its shard; a full exact shard turns approximate."""
        with self._lock:
            shard = self._shards.get(start)
            if shard is None:
                shard = self._shards[start] = _Shard(start, faiss.IndexFlatIP(self.dim))
            if vector_id <= shard.max_id:
                raise ValueError(f"vector {vector_id} is not after the shard's last one ({shard.max_id})")
            self._add_rows(
                shard, np.array([vector_id], np.int64),
                np.ascontiguousarray(vector.reshape(1, -1), dtype=np.float32), self._coded([meta]),
            )  # fmt: skip
            self._convert_if_full(shard)

    def _convert_if_full(self, shard: _Shard) -> None:
        """Start building the approximate index of an exact shard that outgrew ``exact_max_vectors``."""
        full = shard.kind == "flat" and shard.flat.ntotal > self.config.exact_max_vectors
        if full and shard.converting is None:
            snapshot = shard.vectors().copy()
            shard.converting = threading.Thread(
                target=self._convert, args=(shard, snapshot), name=f"index-{shard.start}", daemon=True
            )
            shard.converting.start()

    def update(self, start: int, vector_ids: Iterable[int], meta: RowMeta) -> None:
        """New attributes (last seen, family, colours) for the rows of a track's vectors."""
        with self._lock:
            shard = self._shards.get(start)
            if shard is None:
                return
            rows = shard.rows_of(np.fromiter(vector_ids, np.int64))
            if len(rows):
                shard.columns.set(rows, {name: value[0] for name, value in self._coded([meta]).items()})

    def _convert(self, shard: _Shard, vectors: np.ndarray) -> None:
        """Build a full shard's approximate index while the exact one keeps serving, then swap."""
        started = time.perf_counter()
        index, kind = self._approximate(vectors)  # a minute at a million vectors: outside the lock
        with self._lock:
            newer = shard.vectors()[len(vectors) :]  # added while it was being built
            if len(newer):
                rows = np.arange(len(vectors), len(vectors) + len(newer), dtype=np.int64)
                if kind == "ivf":
                    index.add_with_ids(np.ascontiguousarray(newer), rows)
                else:
                    index.add(np.ascontiguousarray(newer))
            shard.approx, shard.kind, shard.dirty, shard.converting = index, kind, True, None
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
                index = shard.approx if shard.approx is not None else shard.flat
                data = faiss.serialize_index(index)
                snapshots.append((shard.start, shard.kind, shard.max_id, int(index.ntotal), data))
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
        """Load a saved shard, its rows and their attributes from the store; return why it cannot be
        used, or None."""
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
        if meta.get("kind") not in ("flat", "hnsw", "ivf"):
            return f"unknown index kind {meta.get('kind')!r}"
        try:
            index = faiss.deserialize_index(np.frombuffer(data, dtype=np.uint8))
        except RuntimeError as exc:
            return f"index file unreadable: {exc}"
        expected = store.shard_summary(start, meta["max_id"])
        if index.ntotal != expected or meta.get("ntotal") != expected or index.d != self.dim:
            return f"holds {index.ntotal} vectors, the store has {expected}"
        shard = _Shard(start, faiss.IndexFlatIP(self.dim))
        # A flat shard's vectors come from the store, like an approximate shard's exact rows: its
        # file is a checked copy.
        self._fill(
            shard, store, (int(meta["max_id"]), index, meta["kind"]) if meta["kind"] != "flat" else None
        )
        with self._lock:
            shard.max_id = max(shard.max_id, int(meta["max_id"]))
            shard.dirty = shard.max_id > int(meta["max_id"])
            self._shards[start] = shard
            self._convert_if_full(shard)  # saved before its approximate index was ready
        return None

    # -- searching -----------------------------------------------------------------------------

    def search(
        self, queries: np.ndarray, k: int, shards: list[int] | None = None, where: Where | None = None
    ) -> list[tuple[int, float]]:
        """Best (vector id, score) pairs over the given shards, only rows that pass ``where``;
        several queries merge by max score."""
        queries = np.ascontiguousarray(queries, dtype=np.float32).reshape(-1, self.dim)
        found_ids, found_scores = [], []
        with self._lock:
            luts = self._luts(where) if where is not None else None
            for start, shard in self._shards.items():
                if (shards is not None and start not in shards) or shard.columns.n == 0:
                    continue
                rows, scores = self._search_shard(shard, queries, k, where, luts)
                found_ids.append(shard.columns["ids"][rows])
                found_scores.append(scores)
        if not found_ids:
            return []
        ids, scores = np.concatenate(found_ids), np.concatenate(found_scores)
        order = np.argsort(-scores, kind="stable")[:k]
        return [(int(ids[i]), float(scores[i])) for i in order]

    def _luts(self, where: Where) -> dict[str, np.ndarray]:
        """Lookup tables code → passes, for each categorical filter that is set."""
        department, filters = where.department, where.filters
        luts = {"scope": self._codes["scope"].lut(lambda s: department in s or EVERY_DEPARTMENT in s)}
        if filters.camera_ids:
            luts["camera"] = self._codes["camera"].lut(lambda c: c in filters.camera_ids)
        if filters.families:
            luts["family"] = self._codes["family"].lut(lambda f: f in filters.families)
        if filters.colours:
            luts["colours"] = self._codes["colours"].lut(lambda c: bool(filters.colours.intersection(c)))
        return luts

    def _selected(self, shard: _Shard, where: Where, luts: dict[str, np.ndarray]) -> np.ndarray | None:
        """The rows of a shard that pass (ascending), or None when all of them do."""
        columns, filters = shard.columns, where.filters
        camera_codes = np.flatnonzero(luts["camera"]) if "camera" in luts else None
        rows, used = columns.candidates(filters, camera_codes)

        def column(name: str) -> np.ndarray:
            return columns[name] if rows is None else columns[name][rows]

        mask = None
        for name in ("camera", "family", "colours", "scope"):
            lut = luts.get(name)
            everyone = lut is not None and lut[1:].all() and columns.unknown == 0  # code 0: unknown
            if lut is not None and not everyone and name != used:  # the camera lists hold only those
                passes = lut[column(name)]
                mask = passes if mask is None else mask & passes
        if filters.start is not None:
            passes = column("last_seen") >= filters.start
            mask = passes if mask is None else mask & passes
        if filters.end is not None:
            passes = column("first_seen") <= filters.end
            mask = passes if mask is None else mask & passes
        if rows is None:
            return None if mask is None or mask.all() else np.flatnonzero(mask)
        return np.sort(rows if mask is None else rows[mask])

    def _search_shard(
        self, shard: _Shard, queries: np.ndarray, k: int, where: Where | None, luts: dict | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of a shard's best ``k`` rows that pass ``where``."""
        n = shard.columns.n
        rows = self._selected(shard, where, luts) if where is not None else None
        if rows is not None and (len(rows) <= self.config.exact_filtered_max_vectors or shard.approx is None):
            return _best(rows, _scores(shard.vectors(), rows, queries), k)  # exact
        if shard.approx is None:
            scores, found = shard.flat.search(queries, min(k, n))
            return _merge(found, scores, k)
        params = self._params(shard, k)
        if rows is not None:  # many rows pass: the approximate index, told which
            mask = np.zeros(n, bool)
            mask[rows] = True
            bitmap = np.packbits(mask, bitorder="little")  # kept alive until the search returns
            params.sel = faiss.IDSelectorBitmap(n, faiss.swig_ptr(bitmap))
        if shard.kind == "ivf":
            found = _ivf_candidates(shard.approx, queries, min(n, k * self.config.rerank_factor), params)
        else:
            _, found = shard.approx.search(queries, min(k, n), params=params)
        found = np.unique(found[found >= 0])
        return _best(found, _scores(shard.vectors(), found, queries), k)  # exact scores for the candidates

    def _params(self, shard: _Shard, k: int) -> faiss.SearchParameters:
        if shard.kind == "hnsw":
            return faiss.SearchParametersHNSW(efSearch=max(k, self.config.hnsw_ef_search))
        return faiss.SearchParametersIVF(nprobe=self.config.ivf_nprobe)

    def shard_starts(self) -> list[int]:
        with self._lock:
            return sorted(self._shards)

    def stats(self) -> list[tuple[int, str, int]]:
        """(start, kind, vectors) of every shard."""
        with self._lock:
            return [(s.start, s.kind, s.columns.n) for _, s in sorted(self._shards.items())]

    @property
    def ntotal(self) -> int:
        with self._lock:
            return sum(s.columns.n for s in self._shards.values())


def _scores(vectors: np.ndarray, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The best inner product over the queries of each of these rows (ascending), read in place:
    dense rows (a time window: ids grow with time) over their whole span, split over the scoring
    threads when many; many scattered ones one by one; a few scattered ones on a copy."""
    if len(rows) == 0:
        return np.zeros(0, np.float32)
    low, high = int(rows[0]), int(rows[-1]) + 1
    if high - low <= 2 * len(rows):
        blocks = np.array_split(vectors[low:high], _parts(high - low))  # views: nothing copied
        return _in_parallel(blocks, queries)[rows - low]
    if len(rows) <= GATHER_MAX_ROWS:  # a few scattered rows: copied out (no OpenMP region)
        return _score_block(vectors[rows], queries)
    return _score_rows(vectors, rows, queries)


def _score_rows(vectors: np.ndarray, rows: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Scattered rows scored where they lie (faiss's by-index kernel): no copy of the rows."""
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    best = np.full(len(rows), -np.inf, np.float32)
    out = np.empty(len(rows), np.float32)
    for query in queries:
        faiss.fvec_inner_products_by_idx(
            faiss.swig_ptr(out), faiss.swig_ptr(query), faiss.swig_ptr(vectors), faiss.swig_ptr(rows),
            vectors.shape[1], 1, len(rows),
        )  # fmt: skip
        np.maximum(best, out, out=best)
    return best


def _ivf_candidates(index: faiss.IndexIVF, queries: np.ndarray, k: int, params) -> np.ndarray:
    """The best ``k`` rows by the IVF codes, for each query: the nearest ``nprobe`` lists are split
    over the scoring threads (alternately, so the parts are alike) and each part's best kept — their
    union holds the overall best, which exact re-scoring then ranks."""
    if SCORING_THREADS == 1:
        return index.search(queries, k, params=params)[1]
    distances, lists = index.quantizer.search(queries, min(params.nprobe, index.nlist))

    def scan(part: int) -> np.ndarray:
        columns = slice(part, None, SCORING_THREADS)
        probe, probe_distances = (np.ascontiguousarray(a[:, columns]) for a in (lists, distances))
        sub = faiss.SearchParametersIVF(nprobe=probe.shape[1], sel=params.sel)
        found_distances = np.empty((len(queries), k), np.float32)
        found = np.empty((len(queries), k), np.int64)
        index.search_preassigned_c(  # the C++ call: the Python wrapper takes no search parameters
            len(queries), faiss.swig_ptr(queries), k, faiss.swig_ptr(probe), faiss.swig_ptr(probe_distances),
            faiss.swig_ptr(found_distances), faiss.swig_ptr(found), False, sub, None,
        )  # fmt: skip
        return found

    return np.concatenate(list(_SCORING.map(scan, range(SCORING_THREADS))), axis=1)


def _parts(n: int) -> int:
    return 1 if n <= GATHER_MAX_ROWS else SCORING_THREADS


def _in_parallel(blocks: list, queries: np.ndarray) -> np.ndarray:
    """Scores of consecutive blocks of rows, concatenated; the blocks scored on the scoring threads."""
    if len(blocks) == 1:
        return _score_block(blocks[0], queries)
    return np.concatenate(list(_SCORING.map(lambda block: _score_block(block, queries), blocks)))


def _score_block(block: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """faiss's single-threaded SIMD kernel (it releases the GIL) over a block of rows — not numpy's
    BLAS, whose threads waking beside faiss's turn 0.1 ms into tens of ms on a busy machine."""
    block = np.ascontiguousarray(block)
    best = np.full(len(block), -np.inf, np.float32)
    out = np.empty(len(block), np.float32)
    for query in queries:
        faiss.fvec_inner_products_ny(
            faiss.swig_ptr(out), faiss.swig_ptr(query), faiss.swig_ptr(block), block.shape[1], len(block)
        )
        np.maximum(best, out, out=best)
    return best


def _best(rows: np.ndarray, best: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best rows by their scores."""
    if len(best) > k:
        top = np.argpartition(-best, k - 1)[:k]
        return rows[top], best[top]
    return rows, best


def _merge(rows: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query top lists (queries × k) merged into one: each row once, at its best score."""
    flat_rows, flat_scores = rows.ravel(), scores.ravel()
    keep = flat_rows >= 0
    flat_rows, flat_scores = flat_rows[keep], flat_scores[keep]
    order = np.argsort(-flat_scores, kind="stable")
    unique, first = np.unique(flat_rows[order], return_index=True)
    best = flat_scores[order][first]
    top = np.argsort(-best, kind="stable")[:k]
    return unique[top], best[top]


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
