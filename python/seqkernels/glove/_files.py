"""Shared plumbing of seqkernels.glove: corpus arguments, all-or-nothing file output, progress bars,
and the byte/str convention for words."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterable

__all__ = [
    "encode_word",
    "decode_word",
    "CorpusFd",
    "corpus_argument",
    "atomic_path",
    "progress_callback",
    "thread_count",
]

# Words are bytes in Stanford's files. In Python they are str, decoded as UTF-8 with
# "surrogateescape", so that any byte string (Latin-1 text, broken UTF-8) survives the round trip.
_ENCODING, _ERRORS = "utf-8", "surrogateescape"


def encode_word(word) -> bytes:
    if isinstance(word, bytes):
        return word
    if isinstance(word, str):
        return word.encode(_ENCODING, _ERRORS)
    raise TypeError(f"word: expected str or bytes, got {type(word).__name__}")


def decode_word(word: bytes) -> str:
    return word.decode(_ENCODING, _ERRORS)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()


class CorpusFd(int):
    """An open file descriptor to read a corpus from (the command line passes stdin this way)."""


def corpus_argument(corpus, name: str = "corpus"):
    """What the kernels accept for a corpus: a path (str), a file descriptor (int) or bytes.

    ``corpus`` may be a path (str or os.PathLike), bytes-like data, or an iterable of lines (str or
    bytes; joined with newlines). Missing or empty files and empty data are errors."""
    if isinstance(corpus, CorpusFd):
        return int(corpus)
    if isinstance(corpus, (str, os.PathLike)):
        path = os.fspath(corpus)
        if not os.path.exists(path):
            raise FileNotFoundError(f"{name}: no such file: '{path}'")
        if os.path.isdir(path):
            raise IsADirectoryError(f"{name}: '{path}' is a directory, not a text file")
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            raise ValueError(f"{name}: file '{path}' is empty")
        return path
    if isinstance(corpus, (bytes, bytearray, memoryview)):
        if len(corpus) == 0:
            raise ValueError(f"{name}: is empty")
        return corpus
    if isinstance(corpus, bool) or isinstance(corpus, int):
        raise TypeError(f"{name}: expected a path, bytes or an iterable of lines, got {type(corpus).__name__}")
    if isinstance(corpus, Iterable):
        lines = [encode_word(line).rstrip(b"\n") for line in corpus]
        if not lines:
            raise ValueError(f"{name}: is empty")
        return b"\n".join(lines) + b"\n"
    raise TypeError(f"{name}: expected a path, bytes or an iterable of lines, got {type(corpus).__name__}")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside ``path``; on success it is renamed to ``path``, on any error
    (or interrupt) it is removed, so no partial output file is ever left behind."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot write '{path}': directory '{directory}' does not exist")
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".partial", dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def progress_callback(progress, desc: str) -> Callable | None:
    """A kernel progress callback ``(stage, done, total)``: None for ``progress=False``, the callable
    itself if one is given, else a tqdm bar on stderr (bytes while counting, chunks while merging)."""
    if progress is None or progress is False:
        return None
    if callable(progress):
        return progress
    from tqdm.auto import tqdm

    state = {"bar": None, "stage": None}

    def update(stage: str, done: int, total: int) -> None:
        if stage != state["stage"]:
            if state["bar"] is not None:
                state["bar"].close()
            unit = "B" if stage in ("vocab", "cooccur") else "chunk"
            state["bar"] = tqdm(
                total=total if total >= 0 else None,
                desc=f"{desc}: {stage}",
                unit=unit,
                unit_scale=unit == "B",
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )
            state["stage"] = stage
        bar = state["bar"]
        bar.update(done - bar.n)
        if total >= 0 and done >= total:
            bar.close()

    return update


def thread_count(threads, name: str = "threads") -> int:
    """``None`` -> 0 (all cores); otherwise a positive int."""
    if threads is None:
        return 0
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ValueError(f"{name}: expected a positive integer or None (all cores), got {threads!r}")
    return threads
