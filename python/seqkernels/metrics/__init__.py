"""Evaluation metrics for sequence models.

:func:`bleu` (corpus BLEU) and :func:`sentence_bleu` follow docs/ops.md §4 with sacrebleu's conventions
(tokenisation, smoothing, effective order, reference streams); see :mod:`seqkernels.metrics.bleu`
for the formula and every convention.
"""

from .bleu import SMOOTH_METHODS, TOKENIZERS, BLEUScore, bleu, sentence_bleu, tokenize_13a

__all__ = ["bleu", "sentence_bleu", "BLEUScore", "tokenize_13a", "TOKENIZERS", "SMOOTH_METHODS"]
