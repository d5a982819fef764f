"""``seqkernels demo words``: GloVe and skip-gram side by side on text every Python installation
carries (no download): the docstrings and comments of the standard library and the help topics
(``pydoc_data.topics``). Prints nearest neighbours and analogies for a few probe words for both
models and writes a t-SNE picture of some related words. About a minute on 2 cores."""

from __future__ import annotations

import os
import re
import sysconfig
import time

WORD = re.compile(r"[a-z][a-z0-9]*")
DOCSTRING = re.compile(r'(?:"""|\'\'\')(.*?)(?:"""|\'\'\')', re.S)
COMMENT = re.compile(r"^\s*#(.*)$", re.M)
SKIP_DIRS = {"test", "tests", "idlelib", "site-packages", "dist-packages", "__pycache__", "lib2to3", "turtledemo"}

PROBES = ["list", "file", "thread", "error", "string", "socket", "read"]
ANALOGIES = [
    ("list", "lists", "string"),
    ("read", "write", "get"),
    ("true", "false", "yes"),
    ("open", "close", "start"),
    ("file", "files", "thread"),
    ("client", "server", "send"),
]
GROUPS = {
    "containers": ["list", "tuple", "dict", "dictionary", "set", "sequence", "mapping", "array"],
    "i/o": ["file", "read", "write", "stream", "buffer", "socket", "open", "close"],
    "concurrency": ["thread", "lock", "process", "queue", "wait", "signal", "event"],
    "errors": ["error", "exception", "raise", "raised", "warning", "fails", "invalid"],
    "text": ["string", "unicode", "bytes", "character", "encoding", "text", "line"],
}
QUICK_BYTES = 400_000


def corpus_lines(limit_bytes: int | None = None):
    """Lower-cased [a-z][a-z0-9]* words, one line per docstring or comment line of the standard
    library (tests and IDLE left out) and per line of the help topics; files in sorted order."""
    from pydoc_data.topics import topics

    size = 0
    for name in sorted(topics):
        for line in topics[name].split("\n"):
            words = WORD.findall(line.lower())
            if words:
                text = " ".join(words)
                size += len(text) + 1
                yield text
    root = sysconfig.get_paths()["stdlib"]
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        for name in sorted(files):
            if not name.endswith(".py"):
                continue
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    source = f.read()
            except (OSError, UnicodeDecodeError):
                continue
            for block in DOCSTRING.findall(source) + COMMENT.findall(source):
                for line in block.lower().split("\n"):
                    words = WORD.findall(line)
                    if words:
                        text = " ".join(words)
                        size += len(text) + 1
                        yield text
            if limit_bytes is not None and size >= limit_bytes:
                return


def _neighbours(wv, word, n=5):
    if word not in wv:
        return "(not in the vocabulary)"
    return ", ".join(w for w, _ in wv.most_similar(word, topn=n))


def _analogy(wv, a, b, c):
    if any(w not in wv for w in (a, b, c)):
        return "(not in the vocabulary)"
    return wv.analogy(a, b, c)


def run_words_demo(args, out=print) -> int:
    from .. import __version__
    from ..glove import GloVe, Vocabulary, cooccurrence
    from . import Word2Vec

    t_start = time.perf_counter()
    threads = args.threads or None
    out(
        f"seqkernels {__version__} demo words: GloVe and skip-gram on the Python standard library's docstrings "
        "and comments and the help topics (no download)"
    )
    data = ("\n".join(corpus_lines(QUICK_BYTES if args.quick else None)) + "\n").encode()
    vocab = Vocabulary.from_corpus(data, min_count=5, threads=threads)
    out(
        f"corpus: {vocab.tokens / 1e6:.2f}M tokens, {len(vocab):,} words seen 5 times or more "
        f"({time.perf_counter() - t_start:.1f} s to read)"
    )
    epochs_glove, epochs_sg, dim = (3, 1, 25) if args.quick else (25, 10, 100)

    t0 = time.perf_counter()
    cooc = cooccurrence(data, vocab, window_size=10, threads=threads)
    glove = GloVe(vector_size=dim, threads=threads, seed=args.seed + 1).fit(
        cooc, epochs=epochs_glove, progress=not args.no_progress
    )
    glove_wv = glove.to_word_vectors()
    t_glove = time.perf_counter() - t0
    out(f"GloVe: {len(cooc):,} co-occurrence records (window 10), D {dim}, {epochs_glove} epochs: {t_glove:.1f} s")

    t0 = time.perf_counter()
    sg = Word2Vec(
        vector_size=dim,
        sg=True,
        window=5,
        negative=5,
        sample=1e-3,
        epochs=epochs_sg,
        threads=threads,
        seed=args.seed + 1,
    ).fit(data, vocabulary=vocab, progress=not args.no_progress)
    sg_wv = sg.wv
    t_sg = time.perf_counter() - t0
    out(f"skip-gram: negative 5, window 5, sample 1e-3, D {dim}, {epochs_sg} epochs: {t_sg:.1f} s")

    width = 48
    out(f"\nnearest neighbours (cosine)\n{'word':10s} {'GloVe':{width}s} skip-gram")
    for word in PROBES:
        out(f"{word:10s} {_neighbours(glove_wv, word):{width}s} {_neighbours(sg_wv, word)}")
    out(f"\nanalogies a : b :: c : ? (3CosAdd)\n{'question':32s} {'GloVe':16s} skip-gram")
    for a, b, c in ANALOGIES:
        out(f"{f'{a} : {b} :: {c} : ?':32s} {_analogy(glove_wv, a, b, c):16s} {_analogy(sg_wv, a, b, c)}")

    if not args.no_plot:
        groups = {name: [w for w in words if w in sg_wv] for name, words in GROUPS.items()}
        plot = args.plot if args.plot != "seqkernels-demo-loss.png" else "seqkernels-demo-words.png"
        try:
            path = sg_wv.plot(
                method="tsne",
                path=plot,
                groups=groups,
                seed=args.seed,
                title="skip-gram vectors of Python's docstrings (t-SNE)",
            )
            out(f"\nt-SNE picture of {sum(len(g) for g in groups.values())} skip-gram vectors: {path}")
        except ImportError as e:
            out(f"\n(no picture: {e})")
    out(f"total: {time.perf_counter() - t_start:.1f} s")
    return 0
