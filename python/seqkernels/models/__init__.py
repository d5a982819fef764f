"""Classic sequence models (language model, classifier, tagger, seq2seq), built from
:mod:`seqkernels.nn` with the fused recurrent layers.

* :class:`LanguageModel` - character- or word-level; ``fit``, ``perplexity``, ``bits_per_char``,
  ``sample``, ``greedy``, ``beam_search``.
* :class:`SequenceClassifier` - many-to-one (e.g. sentiment), optional pretrained embeddings.
* :class:`SequenceTagger` - many-to-many (a tag per token).
* :class:`Seq2Seq` - encoder-decoder with attention; ``translate`` (beam search) and ``evaluate_bleu``.
* :class:`Vocab` - character/word vocabularies with ``<PAD>``, ``<UNK>``, ``<BOS>``, ``<EOS>``.

Every model's ``fit`` returns a :class:`TrainingHistory`. Every model's ``save(path)`` writes
weights, configuration and vocabularies to one ``.npz``; ``Model.from_file(path)`` or :func:`load`
rebuilds it.
"""

from ._base import Model, TrainingHistory
from .classifiers import SequenceClassifier, SequenceTagger
from .language_model import LanguageModel
from .seq2seq import Seq2Seq
from .vocab import Vocab


def load(path):
    """Rebuild any model written by its ``save(path)``."""
    return Model.from_file(path)


__all__ = [
    "LanguageModel",
    "Model",
    "Seq2Seq",
    "SequenceClassifier",
    "SequenceTagger",
    "TrainingHistory",
    "Vocab",
    "load",
]
