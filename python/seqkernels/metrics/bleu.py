"""BLEU (Papineni et al., 2002) with sacrebleu's conventions (docs/ops.md §4).

Definition
----------
For each sentence ``i`` the hypothesis and its references are tokenised (see *Tokenisation*) and,
for every order ``n = 1..4``, the hypothesis n-grams are counted. An n-gram's count is *clipped*
by the largest number of times it occurs in any single reference of that sentence (the maximum is
taken reference by reference, never summed over references)::

    correct_n = Σ_i Σ_{g ∈ n-grams(hyp_i)} min(count_hyp_i(g), max_k count_ref_ik(g))
    total_n   = Σ_i Σ_{g ∈ n-grams(hyp_i)} count_hyp_i(g)
    p_n       = correct_n / total_n                     (modified n-gram precision)

Corpus BLEU sums the clipped and total counts over all sentences *before* dividing (it is not a
mean of sentence scores). With ``c`` the total hypothesis length in tokens and ``r`` the sum over
sentences of the reference length closest to that sentence's hypothesis length (on a tie the
shorter reference, as sacrebleu), the brevity penalty and the score are::

    BP   = 1                 if c > r   (also c == r, where the formula gives 1)
         = exp(1 − r / c)    if 0 < c ≤ r
         = 0                 if c == 0
    BLEU = 100 · BP · exp((1/4) Σ_{n=1..4} log p_n)

a geometric mean of the four precisions, reported on sacrebleu's 0–100 scale. If any ``p_n`` that
enters the mean is zero the score is 0.

Conventions taken from sacrebleu (2.x)
--------------------------------------
* Pre-processing of every segment: lower-case with :meth:`str.lower` when ``lowercase=True``,
  strip trailing whitespace, tokenise, split on whitespace.
* If no n-gram of any order matches (``correct_n = 0`` for all n) the score is 0 whatever the
  smoothing method.
* Smoothing (Chen & Cherry 2014), applied to orders whose precision is zero:

  - ``"exp"`` (default; NIST/mteval-v13a "method 3"): the k-th order with ``correct_n = 0``, counted
    from low to high orders, gets ``p_n = 1 / (2^k · total_n)``;
  - ``"floor"`` ("method 1"): ``p_n = 0.1 / total_n``;
  - ``"add-k"`` ("method 2", k = 1): ``p_n = (correct_n + 1) / (total_n + 1)`` for ``n ≥ 2``
    (every such order, zero or not; ``p_1`` is unsmoothed);
  - ``"none"``: a zero precision makes the score 0.

* Orders for which the hypotheses contain no n-gram at all (``total_n = 0``, e.g. all sentences
  shorter than n tokens) stop the loop over orders: their precision is reported as 0. Corpus BLEU
  then scores 0 (such an order still counts in the mean), while :func:`sentence_bleu` uses
  sacrebleu's *effective order*: the mean runs only over the orders ``1..n_eff`` for which the
  hypothesis has n-grams, so a 3-token hypothesis is scored on ``p_1..p_3``. (With ``"add-k"``,
  ``total_n ≥ 1`` for ``n ≥ 2`` after adding k, so there the effective order is always 4.)
* ``references`` for :func:`bleu` is a list of reference *streams*, as in sacrebleu:
  ``references[k][i]`` is the k-th reference of sentence ``i``. Several references may have
  different lengths. An entry may be ``None`` to mean "sentence i has no k-th reference"
  (sacrebleu's way of giving sentences different numbers of references); every sentence needs at
  least one. An empty string is a real, empty reference (length 0).
* :attr:`BLEUScore.precisions` are sacrebleu's, i.e. the smoothed percentages actually averaged;
  :attr:`BLEUScore.counts` and :attr:`BLEUScore.totals` are the raw clipped and total n-gram counts.
  (sacrebleu's ``add-k`` adds k to its reported counts and totals for n ≥ 2; here they stay raw.)

Tokenisation
------------
``"13a"`` is the tokeniser of mteval-v13a.pl (WMT's official scorer), as sacrebleu applies it:
remove ``<skipped>``; join ``-\\n`` line-end hyphenation; newlines become spaces; unescape
``&quot; &amp; &lt; &gt;`` (in that order); then, on the line padded with one space on each side,
(1) surround with spaces every ASCII punctuation character except ``' , - .``; (2) split off a
period or comma unless it is preceded by a digit; (3) split off a period or comma unless it is
followed by a digit; (4) split off a hyphen that follows a digit; finally collapse whitespace.
Case is not changed by the tokeniser (``lowercase`` does that). ``"none"`` only splits on
whitespace.

sacrebleu's ``"intl"`` tokeniser (mteval-v14 international) is **not** provided: it is defined by
the Unicode property classes ``\\p{P}``, ``\\p{S}`` and ``\\p{N}`` of the third-party ``regex``
module, whose Unicode tables are newer than the standard library's :mod:`unicodedata` (Unicode 14
on Python 3.11), so a standard-library implementation could not be guaranteed to agree with it on
every character. Neither are the language-specific tokenisers (``zh``, ``ja-mecab``, ``spm``, ...).
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["BLEUScore", "bleu", "sentence_bleu", "tokenize_13a", "TOKENIZERS", "SMOOTH_METHODS"]

#: Highest n-gram order (n = 1..4).
MAX_ORDER = 4
#: Tokenisers accepted by ``tokenize``.
TOKENIZERS = ("13a", "none")
#: Smoothing methods accepted by ``smooth``.
SMOOTH_METHODS = ("exp", "floor", "add-k", "none")
#: sacrebleu's default constants for the "floor" and "add-k" methods.
FLOOR_VALUE = 0.1
ADD_K_VALUE = 1


# --------------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BLEUScore:
    """A BLEU result.

    Attributes:
        score: BLEU on the 0–100 scale.
        precisions: the four n-gram precisions in percent, after smoothing (sacrebleu's values);
            0 for orders that were not reached (see the module docstring).
        counts: clipped (matching) n-gram counts for n = 1..4, summed over sentences.
        totals: hypothesis n-gram counts for n = 1..4, summed over sentences.
        bp: brevity penalty.
        sys_len: total hypothesis length ``c`` in tokens.
        ref_len: effective reference length ``r`` (sum of the closest reference lengths).
    """

    score: float
    precisions: tuple[float, ...]
    counts: tuple[int, ...]
    totals: tuple[int, ...]
    bp: float
    sys_len: int
    ref_len: int

    @property
    def ratio(self) -> float:
        """``sys_len / ref_len`` (0 when ``ref_len`` is 0, as sacrebleu)."""
        return self.sys_len / self.ref_len if self.ref_len else 0.0

    def __str__(self) -> str:
        # Same layout as sacrebleu's BLEUScore.format() without a signature.
        precs = "/".join(f"{p:.1f}" for p in self.precisions)
        return (
            f"BLEU = {self.score:.2f} {precs} (BP = {self.bp:.3f} ratio = {self.ratio:.3f} "
            f"hyp_len = {self.sys_len:d} ref_len = {self.ref_len:d})"
        )


# --------------------------------------------------------------------------------------------
# Tokenisation
# --------------------------------------------------------------------------------------------

# Step (1) of mteval-v13a: every ASCII punctuation character except apostrophe, comma, hyphen and
# period (those four get the context-dependent rules below). The space in the class is harmless:
# whitespace is collapsed at the end anyway.
_V13A_SPLIT_ALWAYS = "".join(ch for ch in string.punctuation if ch not in "',-.") + " "
_V13A_STEPS = (
    (re.compile("([" + re.escape(_V13A_SPLIT_ALWAYS) + "])"), r" \1 "),
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),  # period/comma not preceded by a digit
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),  # period/comma not followed by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # hyphen preceded by a digit
)
_V13A_UNESCAPE = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))


@lru_cache(maxsize=2**16)
def tokenize_13a(line: str) -> str:
    """Tokenise one segment like mteval-v13a.pl (sacrebleu's ``"13a"``); tokens joined by spaces.

    The substitutions run left to right without overlap (Perl ``s///g`` and :func:`re.sub` agree),
    so e.g. ``"a..b"`` becomes ``"a . . b"``, ``"3.14,"`` becomes ``"3.14 ,"`` and ``"1-2"`` becomes
    ``"1 - 2"``. See the module docstring for the list of steps.
    """
    if not isinstance(line, str):
        raise TypeError(f"tokenize_13a: line must be a str, got {type(line).__name__}")
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        for entity, char in _V13A_UNESCAPE:
            line = line.replace(entity, char)
    text = f" {line} "
    for pattern, replacement in _V13A_STEPS:
        text = pattern.sub(replacement, text)
    return " ".join(text.split())


def _tokenize_none(line: str) -> str:
    return line


_TOKENIZER_FUNCS: dict[str, Callable[[str], str]] = {"13a": tokenize_13a, "none": _tokenize_none}


def _segment_tokens(sentence: str, tokenizer: Callable[[str], str], lowercase: bool) -> list[str]:
    if lowercase:
        sentence = sentence.lower()
    return tokenizer(sentence.rstrip()).split()


# --------------------------------------------------------------------------------------------
# Statistics
# --------------------------------------------------------------------------------------------


def _ngram_counts(tokens: Sequence[str]) -> Counter:
    """Counts of every n-gram (as a tuple of tokens) of orders 1..MAX_ORDER."""
    counts: Counter = Counter()
    length = len(tokens)
    for n in range(1, MAX_ORDER + 1):
        for start in range(length - n + 1):
            counts[tuple(tokens[start : start + n])] += 1
    return counts


def _closest_ref_len(hyp_len: int, ref_lens: Sequence[int]) -> int:
    # Smallest |hyp_len − r|; among equally close references the shorter one.
    return min(ref_lens, key=lambda r: (abs(hyp_len - r), r))


def _sentence_stats(hyp_tokens: list[str], refs_tokens: list[list[str]]) -> tuple[int, int, list[int], list[int]]:
    """(hyp_len, closest ref_len, correct[n], total[n]) for one sentence."""
    max_ref_counts: Counter = Counter()
    for ref in refs_tokens:
        for gram, count in _ngram_counts(ref).items():
            if count > max_ref_counts[gram]:
                max_ref_counts[gram] = count
    hyp_len = len(hyp_tokens)
    ref_len = _closest_ref_len(hyp_len, [len(ref) for ref in refs_tokens])
    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    for gram, count in _ngram_counts(hyp_tokens).items():
        n = len(gram) - 1
        total[n] += count
        clip = max_ref_counts.get(gram, 0)
        correct[n] += count if count < clip else clip
    return hyp_len, ref_len, correct, total


def _score(
    correct: list[int], total: list[int], sys_len: int, ref_len: int, smooth: str, effective_order: bool
) -> BLEUScore:
    """BLEU from summed statistics (see the module docstring for every convention)."""
    if sys_len < ref_len:
        bp = math.exp(1.0 - ref_len / sys_len) if sys_len > 0 else 0.0
    else:
        bp = 1.0

    precisions = [0.0] * MAX_ORDER
    result = dict(counts=tuple(correct), totals=tuple(total), bp=bp, sys_len=sys_len, ref_len=ref_len)
    if not any(correct):
        return BLEUScore(score=0.0, precisions=tuple(precisions), **result)

    num = list(correct)
    den = list(total)
    if smooth == "add-k":
        for n in range(1, MAX_ORDER):
            num[n] += ADD_K_VALUE
            den[n] += ADD_K_VALUE

    order = MAX_ORDER  # number of precisions in the geometric mean
    exp_factor = 1.0  # 2^k for the k-th zero precision under "exp"
    for n in range(MAX_ORDER):
        if den[n] == 0:
            break
        if effective_order:
            order = n + 1
        if num[n] > 0:
            precisions[n] = 100.0 * num[n] / den[n]
        elif smooth == "exp":
            exp_factor *= 2.0
            precisions[n] = 100.0 / (exp_factor * den[n])
        elif smooth == "floor":
            precisions[n] = 100.0 * FLOOR_VALUE / den[n]
        # "none" (and "add-k" at n = 1): the precision stays 0

    used = precisions[:order]
    if any(p == 0.0 for p in used):
        score = 0.0
    else:
        score = bp * math.exp(sum(math.log(p) for p in used) / order)
    return BLEUScore(score=score, precisions=tuple(precisions), **result)


# --------------------------------------------------------------------------------------------
# Argument checks
# --------------------------------------------------------------------------------------------

_STREAMS_HELP = "references[k][i] is the k-th reference of sentence i"


def _check_options(tokenize: object, smooth: object, lowercase: object) -> Callable[[str], str]:
    if not isinstance(tokenize, str):
        raise TypeError(f"tokenize must be a str, one of {list(TOKENIZERS)}; got {type(tokenize).__name__}")
    if tokenize not in _TOKENIZER_FUNCS:
        extra = ""
        if tokenize == "intl":
            extra = " ('intl' is not implemented: it cannot be reproduced exactly without the 'regex' module)"
        raise ValueError(f"tokenize must be one of {list(TOKENIZERS)}; got {tokenize!r}{extra}")
    if not isinstance(smooth, str):
        raise TypeError(f"smooth must be a str, one of {list(SMOOTH_METHODS)}; got {type(smooth).__name__}")
    if smooth not in SMOOTH_METHODS:
        raise ValueError(f"smooth must be one of {list(SMOOTH_METHODS)}; got {smooth!r}")
    if not isinstance(lowercase, bool):
        raise TypeError(f"lowercase must be a bool; got {type(lowercase).__name__}")
    return _TOKENIZER_FUNCS[tokenize]


def _as_list(value: object, name: str, what: str) -> list:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"{name} must be {what}, got a single {type(value).__name__}")
    try:
        return list(value)  # type: ignore[call-overload]
    except TypeError:
        raise TypeError(f"{name} must be {what}, got {type(value).__name__}") from None


def _check_hypotheses(hypotheses: object) -> list[str]:
    hyps = _as_list(hypotheses, "hypotheses", "a list of hypothesis strings")
    if not hyps:
        raise ValueError("hypotheses must contain at least one hypothesis string; got an empty list")
    for i, hyp in enumerate(hyps):
        if not isinstance(hyp, str):
            raise TypeError(f"hypotheses[{i}] must be a str, got {type(hyp).__name__}")
    return hyps


def _check_reference_streams(references: object, n_sentences: int) -> list[list[str | None]]:
    what = f"a list of reference streams ({_STREAMS_HELP})"
    streams = _as_list(references, "references", what)
    if not streams:
        raise ValueError(f"references must contain at least one reference stream ({_STREAMS_HELP}); got an empty list")
    out = []
    for k, stream in enumerate(streams):
        if isinstance(stream, str):
            raise TypeError(
                f"references[{k}] must be a list of strings, one per hypothesis, got a str: references is "
                f"{what}; wrap a single stream as [refs]"
            )
        stream = _as_list(stream, f"references[{k}]", "a list of strings, one per hypothesis")
        if len(stream) != n_sentences:
            raise ValueError(
                f"references[{k}] has {len(stream)} entries but hypotheses has {n_sentences}; "
                f"every reference stream must have one entry per hypothesis ({_STREAMS_HELP})"
            )
        for i, ref in enumerate(stream):
            if ref is not None and not isinstance(ref, str):
                raise TypeError(
                    f"references[{k}][{i}] must be a str (or None for a missing reference), got {type(ref).__name__}"
                )
        out.append(stream)
    for i in range(n_sentences):
        if all(stream[i] is None for stream in out):
            raise ValueError(f"sentence {i} has no reference: references[k][{i}] is None in every stream")
    return out


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def bleu(
    hypotheses: Iterable[str],
    references: Iterable[Iterable[str | None]],
    tokenize: str = "13a",
    smooth: str = "exp",
    lowercase: bool = False,
) -> BLEUScore:
    """Corpus BLEU, as ``sacrebleu.corpus_bleu`` (``use_effective_order=False``).

    Args:
        hypotheses: one (detokenised) system output string per sentence.
        references: a list of reference streams, ``references[k][i]`` being the k-th reference of
            sentence ``i``; every stream has one entry per hypothesis (``None`` = no k-th reference
            for that sentence). For a single reference per sentence pass ``[refs]``.
        tokenize: ``"13a"`` (mteval-v13a, the default) or ``"none"`` (split on whitespace only).
        smooth: ``"exp"`` (default), ``"floor"`` (0.1), ``"add-k"`` (k = 1) or ``"none"``.
        lowercase: lower-case hypotheses and references before tokenising.

    Returns:
        A :class:`BLEUScore`; ``str()`` of it prints sacrebleu's one-line summary.

    Raises:
        TypeError: a non-string hypothesis/reference or option of the wrong type.
        ValueError: empty inputs, reference streams whose length differs from the number of
            hypotheses, a sentence without any reference, an unknown ``tokenize``/``smooth``.

    The formula and all conventions are in the module docstring (:mod:`seqkernels.metrics.bleu`).
    """
    tokenizer = _check_options(tokenize, smooth, lowercase)
    hyps = _check_hypotheses(hypotheses)
    streams = _check_reference_streams(references, len(hyps))

    sys_len = ref_len = 0
    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    for i, hyp in enumerate(hyps):
        refs = [_segment_tokens(s[i], tokenizer, lowercase) for s in streams if s[i] is not None]
        h_len, r_len, c, t = _sentence_stats(_segment_tokens(hyp, tokenizer, lowercase), refs)
        sys_len += h_len
        ref_len += r_len
        for n in range(MAX_ORDER):
            correct[n] += c[n]
            total[n] += t[n]
    return _score(correct, total, sys_len, ref_len, smooth, effective_order=False)


def sentence_bleu(
    hypothesis: str,
    references: Iterable[str | None],
    tokenize: str = "13a",
    smooth: str = "exp",
    lowercase: bool = False,
) -> BLEUScore:
    """BLEU of one sentence, as ``sacrebleu.sentence_bleu`` (which uses the effective order).

    Args:
        hypothesis: the system output string.
        references: a non-empty list of reference strings for this sentence (``None`` entries are
            ignored, as in sacrebleu).
        tokenize, smooth, lowercase: as for :func:`bleu`.

    The geometric mean runs over the orders ``1..n_eff`` for which the hypothesis has n-grams
    (sacrebleu's ``use_effective_order=True``), so short hypotheses are not scored 0 merely for
    being shorter than 4 tokens; everything else is as in :func:`bleu`.
    """
    tokenizer = _check_options(tokenize, smooth, lowercase)
    if not isinstance(hypothesis, str):
        raise TypeError(f"hypothesis must be a str, got {type(hypothesis).__name__}")
    refs = _as_list(references, "references", "a list of reference strings for this sentence")
    if not refs:
        raise ValueError("references must contain at least one reference string; got an empty list")
    for k, ref in enumerate(refs):
        if ref is not None and not isinstance(ref, str):
            raise TypeError(f"references[{k}] must be a str, got {type(ref).__name__}")
    refs_tokens = [_segment_tokens(ref, tokenizer, lowercase) for ref in refs if ref is not None]
    if not refs_tokens:
        raise ValueError("references must contain at least one reference string; got only None")
    h_len, r_len, c, t = _sentence_stats(_segment_tokens(hypothesis, tokenizer, lowercase), refs_tokens)
    return _score(c, t, h_len, r_len, smooth, effective_order=True)
