"""word2vec: skip-gram and CBOW with negative sampling (issue 15), trained by a C++ kernel with
word2vec.c's rules (subsampling, dynamic window, unigram^0.75 noise table, linear learning-rate
decay, Hogwild threads); the rules are written out in :mod:`seqkernels.reference.word2vec`::

    model = Word2Vec(vector_size=100, window=5, negative=5, sample=1e-3, min_count=5, epochs=5)
    model.fit("corpus.txt")                  # a path, bytes or an iterable of lines
    model.wv.most_similar("king")            # a seqkernels.glove.WordVectors
    model.save("vectors.bin", binary=True)   # word2vec's formats: gensim loads them unchanged

The command line is ``seqkernels word2vec train`` with word2vec.c's flags.
"""

from .model import Word2Vec, noise_table, subsample_thresholds

__all__ = ["Word2Vec", "noise_table", "subsample_thresholds"]
