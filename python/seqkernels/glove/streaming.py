"""Co-occurrence records streamed from disk for bounded-memory training (``GloVe.fit(memory=...)``,
``glove train -memory GB``).

Memory: the parameters and AdaGrad accumulators (2 x 2V(D+1) float64) plus one chunk of records
and its per-record terms. Records are read with ``readinto`` into buffers allocated once, not
memory-mapped: pages of a mapped file count in the process's resident set until unmapped, and the
point is a resident set that does not grow with the file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

import numpy as np

from .cooccurrence import RECORD

__all__ = ["RecordFile", "StreamPlan"]

GB = 2**30
# Per record of a chunk: the record (16 B), rows/cols/values arrays (16 B), log(x) and f(x) (16 B),
# the permutation (8 B) and a second record buffer for the merge (16 B).
BYTES_PER_CHUNK_RECORD = 72
MIN_CHUNK_RECORDS = 64
# Headroom for what is not a chunk buffer: small temporaries, tqdm, file objects.
HEADROOM_BYTES = 16 * 2**20


def resident_bytes() -> int:
    """This process's resident set now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class StreamPlan:
    """Chunk size for a limit of ``memory_gb`` GB on the whole process: what it holds already
    (interpreter, libraries) is measured and taken off first."""

    def __init__(self, memory_gb: float, V: int, D: int, records: int):
        params = 2 * (2 * V * (D + 1) * 8)
        budget = int(memory_gb * GB)
        held = resident_bytes() + HEADROOM_BYTES
        avail = budget - params - held
        if avail < MIN_CHUNK_RECORDS * BYTES_PER_CHUNK_RECORD:
            need = params + held + MIN_CHUNK_RECORDS * BYTES_PER_CHUNK_RECORD
            raise ValueError(
                f"memory: {memory_gb} GB is too small: the process already holds {held / GB:.3f} GB, "
                f"the parameters and accumulators for V = {V}, D = {D} take {params / GB:.3f} GB; "
                f"at least {need / GB:.3f} GB are needed"
            )
        self.chunk_records = int(min(records, avail // BYTES_PER_CHUNK_RECORD))


class RecordFile:
    """A cooccurrence.bin on disk, checked (size, ids) without loading it."""

    def __init__(self, path, vocab_size: int | None):
        self.path = os.fspath(path)
        size = os.path.getsize(self.path)  # FileNotFoundError names the path
        if size == 0:
            raise ValueError(f"co-occurrence file '{self.path}' is empty")
        if size % RECORD.itemsize:
            raise ValueError(
                f"co-occurrence file '{self.path}' is truncated or corrupt: its size ({size} bytes) "
                f"is not a multiple of the {RECORD.itemsize}-byte record"
            )
        self.count = size // RECORD.itemsize
        if vocab_size is None:
            raise ValueError(
                "vocab_size: needed to train from a file in bounded memory (or pass a vocabulary file to the CLI)"
            )
        self.vocab_size = int(vocab_size)

    def _blocks(self, f, buf):
        """Yields views of ``buf`` filled from f until the end."""
        raw = buf.view(np.uint8)
        while True:
            got = f.readinto(memoryview(raw))
            if not got:
                return
            if got % RECORD.itemsize:
                raise ValueError(f"co-occurrence file '{self.path}' changed while reading")
            yield buf[: got // RECORD.itemsize]

    def _check(self, block, first):
        w1, w2, v = block["word1"], block["word2"], block["value"]
        bad = (w1 < 1) | (w1 > self.vocab_size) | (w2 < 1) | (w2 > self.vocab_size) | ~np.isfinite(v) | (v <= 0)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"co-occurrence file '{self.path}' is corrupt or from another vocabulary: record "
                f"{first + k} has ids ({int(w1[k])}, {int(w2[k])}) and value {float(v[k])!r} "
                f"(ids must be in 1..{self.vocab_size}, values finite and > 0)"
            )

    @contextlib.contextmanager
    def shuffled(self, chunk: int, seed: int, temp_dir=None):
        """Stanford's ``shuffle`` into an unnamed temporary file: (1) every chunk of ``chunk``
        records is shuffled and written out; (2) output chunks are built by taking the next
        chunk/K records (at least one) of each of the K shuffled chunks in turn, and shuffled
        again. Yields a reader of the result."""
        rng = np.random.default_rng(seed)
        buf = np.empty(chunk, dtype=RECORD)
        temp_dir = os.fspath(temp_dir) if temp_dir is not None else tempfile.gettempdir()
        with tempfile.TemporaryFile(dir=temp_dir) as first, tempfile.TemporaryFile(dir=temp_dir) as second:
            sizes = []
            with open(self.path, "rb", buffering=0) as f:
                done = 0
                for block in self._blocks(f, buf):
                    self._check(block, done)
                    done += len(block)
                    block[...] = block[rng.permutation(len(block))]
                    first.write(memoryview(block.view(np.uint8)))
                    sizes.append(len(block))
            if done != self.count:
                raise ValueError(f"co-occurrence file '{self.path}' changed while reading")
            first.flush()  # read back below with pread
            K = len(sizes)
            starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            taken = np.zeros(K, dtype=np.int64)
            share = max(1, chunk // K)
            raw = first.fileno()
            left, k = int(sum(sizes)), 0
            while left:
                n = 0
                while n < chunk and left:  # round the shuffled chunks, share records from each
                    m = int(min(share, sizes[k] - taken[k], chunk - n))
                    if m > 0:
                        want = m * RECORD.itemsize
                        got = os.preadv(
                            raw,
                            [memoryview(buf[n : n + m].view(np.uint8))],
                            int((starts[k] + taken[k]) * RECORD.itemsize),
                        )
                        if got != want:
                            raise OSError(f"reading the shuffle's temporary file failed ({got} of {want} bytes)")
                        taken[k] += m
                        n += m
                        left -= m
                    k = (k + 1) % K
                out = buf[:n]
                out[...] = out[rng.permutation(n)]
                second.write(memoryview(out.view(np.uint8)))
            second.flush()
            yield _ShuffledReader(second, buf)


class _ShuffledReader:
    def __init__(self, f, buf):
        self.f, self.buf = f, buf
        n = len(buf)
        self.rows = np.empty(n, np.int32)
        self.cols = np.empty(n, np.int32)
        self.values = np.empty(n, np.float64)

    def chunks(self):
        """(rows, cols, values) of each chunk in file order, 0-based ids (views of reused buffers)."""
        self.f.seek(0)
        raw = self.buf.view(np.uint8)
        while True:
            got = self.f.readinto(memoryview(raw))
            if not got:
                return
            n = got // RECORD.itemsize
            block = self.buf[:n]
            rows, cols, values = self.rows[:n], self.cols[:n], self.values[:n]
            np.subtract(block["word1"], 1, out=rows)
            np.subtract(block["word2"], 1, out=cols)
            values[...] = block["value"]
            yield rows, cols, values
