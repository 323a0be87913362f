"""The index dir's dense side: an immutable FAISS *base* file, a flat *delta*
of newer rows, and *dead* rows filtered at search time.

Writes never open FAISS: new vectors live in the store and reach a reader's
delta (exact search over a few thousand rows is well under a millisecond);
compaction (``compact.py``) folds the delta into a new base file. A delete
is a row id in the dead set, applied through an ``IDSelector`` to the base
and delta alike, so nothing is rebuilt.

Flat or IVF, from measurements on this machine (scratch/scale/faiss_dense.py,
faiss_ivf_scaling.py; one thread, top-50): exact search took 0.29 ms at 10k,
4.1 ms at 50k and 14.5 ms at 200k passages; IVF-Flat with nlist = 4*sqrt(N)
and nprobe 32 took 0.31 ms at 200k with recall@10 0.980. So the base is IVF
from 40,000 live passages and flat below 20,000, the kind staying as it is in
between (hysteresis: it never flaps, and flat costs at most ~3 ms). HNSW is
not used: it cannot delete, rebuilds at ~5 min a million vectors and cannot
be shared between processes through mmap.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: nprobe values the self-check tries, smallest first; the first with
#: recall@10 >= NPROBE_RECALL against exact search is kept.
NPROBE_STEPS = (8, 16, 32, 64, 128)
NPROBE_RECALL = 0.98
DEFAULT_NPROBE = 32
#: The self-check's queries are stored vectors plus Gaussian noise of this much a dimension.
#: Calibrated at 100k passages of the scale bench (service/bench_scale.py): with 0.04 (mean top-1
#: cosine 0.79) their recall@10 at nprobe 8/16/32/64 was 0.966/0.978/0.984/0.989, and that of 300
#: real CMRC questions 0.964/0.976/0.985/0.991; with 0.02 (cosine 0.93) it was 0.999 at nprobe 8,
#: far easier than real questions, and with 0.05 too hard (nprobe 128 chosen).
QUERY_NOISE = 0.04
#: FAISS wants at least 39 training points a list; 40 * nlist samples are used.
TRAIN_PER_LIST = 40


@dataclass(frozen=True)
class DenseSettings:
    """When the base is IVF and when compaction runs.

    Args:
        ivf_min: from this many live passages a compaction builds an IVF base.
        flat_below: below this many an IVF base becomes flat again.
        delta_max: compaction runs when more rows than this wait in the delta.
        dead_share: ... or when more than this share of the base is dead.
    """

    ivf_min: int = 40_000
    flat_below: int = 20_000
    delta_max: int = 20_000
    dead_share: float = 0.10

    def __post_init__(self) -> None:
        if self.flat_below > self.ivf_min:
            raise ValueError(f"flat_below ({self.flat_below}) must not exceed ivf_min ({self.ivf_min})")


def choose_kind(live: int, current: str, settings: DenseSettings) -> str:
    """'flat' or 'ivf' for a base of ``live`` passages, with hysteresis."""
    if live >= settings.ivf_min:
        return "ivf"
    if live < settings.flat_below:
        return "flat"
    return current


def nlist_for(n: int) -> int:
    """nlist = 4 * sqrt(N) (FAISS wiki, "Guidelines to choose an index"),
    capped so that every list gets its training points."""
    return max(1, min(int(4 * np.sqrt(max(n, 1))), n // TRAIN_PER_LIST or 1))


def _faiss():
    import faiss

    return faiss


def flat(ids: np.ndarray, vecs: np.ndarray, dim: int):
    """An exact index over (ids, vecs); inner product equals cosine because
    vectors are L2-normalised. IDMap2: ids are passage row ids."""
    faiss = _faiss()
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(ids, np.int64))
    return index


def build_ivf(ids: np.ndarray, vecs: np.ndarray, dim: int, *, seed: int = 0):
    """An IVF-Flat index trained on a sample of ``vecs``; (index, nlist)."""
    faiss = _faiss()
    nlist = nlist_for(len(ids))
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, nlist, faiss.METRIC_INNER_PRODUCT)
    rng = np.random.default_rng(seed)
    sample = vecs if len(vecs) <= TRAIN_PER_LIST * nlist else vecs[rng.choice(len(vecs), TRAIN_PER_LIST * nlist,
                                                                                replace=False)]
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(ids, np.int64))
    return index, nlist


def tune_nprobe(index, sample: np.ndarray, *, seed: int = 0, queries: int = 100) -> int:
    """The smallest nprobe whose recall@10 against exact search is at least
    ``NPROBE_RECALL``; the queries are stored vectors (``sample``) plus noise,
    and exact search is the IVF itself probing every list (exact for IVF-Flat)."""
    faiss = _faiss()
    n = len(sample)
    if n == 0 or index.ntotal == 0:
        return DEFAULT_NPROBE
    rng = np.random.default_rng(seed)
    q = sample[rng.choice(n, min(queries, n), replace=False)] + QUERY_NOISE * rng.standard_normal(
        (min(queries, n), sample.shape[1]))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    k = min(10, index.ntotal)
    _, truth = index.search(q, k, params=faiss.SearchParametersIVF(nprobe=index.nlist))
    for nprobe in NPROBE_STEPS:
        if nprobe > index.nlist:
            return index.nlist
        _, got = index.search(q, k, params=faiss.SearchParametersIVF(nprobe=nprobe))
        recall = np.mean([len(set(g) & set(t)) / k for g, t in zip(got, truth)])
        if recall >= NPROBE_RECALL:
            return nprobe
    return NPROBE_STEPS[-1]


def write_base(index, path: Path) -> None:
    """Write a base file whole: to a temporary name, fsync, rename."""
    faiss = _faiss()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_base(path: Path, kind: str):
    """A base file, memory-mapped read-only so that processes share its pages
    (IVF lists map with IO_FLAG_MMAP; a flat index needs IO_FLAG_MMAP_IFC)."""
    faiss = _faiss()
    flags = faiss.IO_FLAG_MMAP_IFC if kind == "flat" else faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY
    return faiss.read_index(str(path), flags)


def load_base_for_update(path: Path):
    """A base file read into memory, to change it (compaction)."""
    return _faiss().read_index(str(path))


def all_vectors(index) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) held by a base (flat IDMap2 or IVF)."""
    faiss = _faiss()
    if isinstance(index, faiss.IndexIDMap2) or hasattr(index, "id_map"):
        ids = faiss.vector_to_array(index.id_map).astype(np.int64)
        vecs = index.index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
        return ids, vecs
    ivf = faiss.extract_index_ivf(index)
    inv = ivf.invlists
    ids_parts, vec_parts = [], []
    for lst in range(ivf.nlist):
        size = inv.list_size(lst)
        if not size:
            continue
        ids_parts.append(faiss.rev_swig_ptr(inv.get_ids(lst), size).copy())
        codes = faiss.rev_swig_ptr(inv.get_codes(lst), size * inv.code_size).copy()
        vec_parts.append(codes.view(np.float32).reshape(size, ivf.d))
    if not ids_parts:
        return np.zeros(0, np.int64), np.zeros((0, ivf.d), np.float32)
    return np.concatenate(ids_parts).astype(np.int64), np.concatenate(vec_parts)


class DenseView:
    """Dense search over one snapshot's base, delta chunks and dead rows.

    Args:
        dim: vector dimension.
        base: the FAISS base (or None), with ``kind`` and ``nprobe``.
        chunks: flat IDMap2 indexes of the delta rows.
        dead: row ids not to return (deleted since the base was built).
    """

    def __init__(self, dim: int, base, kind: str, nprobe: int | None, chunks: tuple, dead: np.ndarray) -> None:
        faiss = _faiss()
        self.dim, self.base, self.kind, self.nprobe, self.chunks = dim, base, kind, nprobe or DEFAULT_NPROBE, chunks
        self.dead = np.unique(np.asarray(dead, np.int64))
        # The selector objects must outlive the parameters that point at them.
        self._batch = faiss.IDSelectorBatch(self.dead) if len(self.dead) else None
        self._sel = faiss.IDSelectorNot(self._batch) if self._batch is not None else None

    @property
    def ntotal(self) -> int:
        """Vectors held, dead ones included."""
        return (self.base.ntotal if self.base is not None else 0) + sum(c.ntotal for c in self.chunks)

    def _params(self, ivf: bool):
        faiss = _faiss()
        if ivf:
            return faiss.SearchParametersIVF(nprobe=self.nprobe, sel=self._sel) if self._sel else \
                faiss.SearchParametersIVF(nprobe=self.nprobe)
        return faiss.SearchParameters(sel=self._sel) if self._sel else None

    def search(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """Top ``k`` (row id, cosine), ties cut by row id."""
        q = np.ascontiguousarray(np.asarray(vector, np.float32).reshape(1, -1))
        parts = []
        if self.base is not None and self.base.ntotal:
            params = self._params(self.kind == "ivf")
            s, i = self.base.search(q, k, params=params) if params is not None else self.base.search(q, k)
            parts.append((s[0], i[0]))
        for chunk in self.chunks:
            if chunk.ntotal:
                params = self._params(False)
                s, i = chunk.search(q, min(k, chunk.ntotal), params=params) if params is not None else \
                    chunk.search(q, min(k, chunk.ntotal))
                parts.append((s[0], i[0]))
        hits = [(int(i), float(s)) for ss, ii in parts for s, i in zip(ss, ii) if i >= 0]  # FAISS pads with -1
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits[:k]
