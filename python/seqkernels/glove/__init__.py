"""GloVe word vectors (docs/ops.md §5), a drop-in for Stanford GloVe: the same files in and out, faster,
and usable from Python.

Pipeline (each step also a ``seqkernels glove`` command with Stanford's flags)::

    vocab = Vocabulary.from_corpus("corpus.txt", min_count=5)            # vocab_count
    cooc = cooccurrence("corpus.txt", vocab, window_size=10, memory=4.0)   # cooccur
    model = GloVe(vector_size=50, x_max=100, alpha=0.75, learning_rate=0.05, seed=1)
    model.fit(cooc, epochs=25)                                             # shuffle + glove
    wv = model.to_word_vectors()
    wv.analogy("man", "king", "woman")                                     # "queen", given data

Counting and training run on the CPU (C++, OpenMP threads). Training also has a CUDA path,
``GloVe.fit(device="cuda")`` / ``glove train -device cuda`` (written, never run on a GPU); GPU
co-occurrence counting is not written, and ``glove cooccur -device cuda`` raises an error. The exact
counting and training rules, and where they deliberately differ from Stanford's, are in
:mod:`seqkernels.reference.glove` and docs/ops.md §5–§6.
"""

from .cooccurrence import Cooccurrence, cooccurrence, write_cooccurrence
from .model import GloVe
from .vectors import WordVectors
from .vocabulary import Vocabulary

__all__ = ["Vocabulary", "Cooccurrence", "cooccurrence", "write_cooccurrence", "GloVe", "WordVectors"]
