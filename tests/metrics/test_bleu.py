"""Tests of seqkernels.metrics BLEU (docs/ops.md §4): hand-checked values, the 13a tokeniser, argument
errors, and agreement with sacrebleu (skipped when sacrebleu is not installed).

Scores are compared with sacrebleu to 0.01 BLEU points; lengths and n-gram counts must be equal.
"""

from __future__ import annotations

import dataclasses
import math
import random
import re

import pytest

from seqkernels.metrics import BLEUScore, bleu, sentence_bleu, tokenize_13a

SMOOTHS = ("exp", "floor", "add-k", "none")


@pytest.fixture
def sacrebleu():
    return pytest.importorskip("sacrebleu")


# ------------------------------------------------------------------------------------------------
# Hand-checked values (no sacrebleu needed)
# ------------------------------------------------------------------------------------------------

SEED_REFS = ["the cat is on the mat", "there is a cat on the mat"]


def test_seed_example_unigram_precision():
    # Papineni et al.'s example: "the" occurs 7 times in the output, at most twice in a single reference.
    result = bleu(["the the the the the the the"], [[SEED_REFS[0]], [SEED_REFS[1]]])
    assert result.counts[0] == 2
    assert result.totals[0] == 7
    assert result.precisions[0] == pytest.approx(100 * 2 / 7)
    assert result.totals == (7, 6, 5, 4)
    assert result.counts == (2, 0, 0, 0)
    one = sentence_bleu("the the the the the the the", SEED_REFS)
    assert (one.counts[0], one.totals[0]) == (2, 7)


def test_seed_example_bigram_precision():
    # A bigram example: "the cat the cat on the mat" has clipped bigram counts 4 of 6.
    result = sentence_bleu("the cat the cat on the mat", SEED_REFS)
    assert (result.counts[0], result.totals[0]) == (5, 7)
    assert (result.counts[1], result.totals[1]) == (4, 6)
    assert result.precisions[1] == pytest.approx(100 * 4 / 6)


def test_clipping_uses_max_over_single_references_not_sum():
    assert bleu(["the the the"], [["the cat"], ["the dog"]]).counts[0] == 1
    assert bleu(["the the the"], [["the the cat"], ["the dog"]]).counts[0] == 2


@pytest.mark.parametrize(
    "refs, expected_ref_len",
    [
        (["a b c d", "a b c d e f"], 4),  # 4 and 6 are equally close to 5: the shorter wins
        (["a b c d e f", "a b c d"], 4),  # whatever the order of the references
        (["a b c", "a b c d e f g"], 3),
        (["a b c d e f", "x y z w v u t s"], 6),
        (["a b c d e f g h", "a b c d e f"], 6),
    ],
)
def test_closest_reference_length(refs, expected_ref_len):
    result = bleu(["a b c d e"], [[r] for r in refs])
    assert result.sys_len == 5
    assert result.ref_len == expected_ref_len


def test_brevity_penalty():
    short = bleu(["a b c"], [["a b c d e f"]], smooth="none")
    assert short.bp == pytest.approx(math.exp(1 - 6 / 3))
    equal = bleu(["a b c d"], [["a b c d"]])
    assert equal.bp == 1.0 and equal.score == pytest.approx(100.0)
    longer = bleu(["a b c d e f"], [["a b c d"]])
    assert longer.bp == 1.0
    empty = bleu([""], [["a b c d"]])
    assert empty.bp == 0.0 and empty.score == 0.0 and empty.sys_len == 0


def test_corpus_sums_statistics_before_dividing():
    hyps = ["a b c d e", "x y"]
    refs = [["a b c d e", "p q"]]
    result = bleu(hyps, refs)
    assert result.counts == (5, 4, 3, 2)
    assert result.totals == (7, 5, 3, 2)
    assert (result.sys_len, result.ref_len) == (7, 7)
    expected = 100 * math.exp(sum(math.log(c / t) for c, t in zip(result.counts, result.totals)) / 4)
    assert result.score == pytest.approx(expected)


def test_geometric_mean_and_smoothing_formulas():
    # Precisions: 3/4, 1/3, 0/2, 0/1 (BP = 1).
    hyp, ref = "a b c d", "a b x d"
    expected = {
        "exp": [75.0, 100 / 3, 100 / (2 * 2), 100 / (4 * 1)],
        "floor": [75.0, 100 / 3, 100 * 0.1 / 2, 100 * 0.1 / 1],
        "add-k": [75.0, 100 * 2 / 4, 100 * 1 / 3, 100 * 1 / 2],
        "none": [75.0, 100 / 3, 0.0, 0.0],
    }
    for smooth, precs in expected.items():
        result = bleu([hyp], [[ref]], smooth=smooth)
        assert result.counts == (3, 1, 0, 0)
        assert result.totals == (4, 3, 2, 1)
        assert result.precisions == pytest.approx(precs)
        want = 0.0 if 0.0 in precs else math.exp(sum(math.log(p) for p in precs) / 4)
        assert result.score == pytest.approx(want)


def test_no_match_scores_zero_for_every_smoothing():
    for smooth in SMOOTHS:
        result = bleu(["p q r s"], [["a b c d"]], smooth=smooth)
        assert result.score == 0.0
        assert result.precisions == (0.0, 0.0, 0.0, 0.0)
        assert result.counts == (0, 0, 0, 0)


def test_effective_order_only_for_sentence_bleu():
    # Two tokens have no 3- or 4-grams: corpus BLEU is 0, sentence BLEU uses orders 1..2.
    assert bleu(["a b"], [["a b"]]).score == 0.0
    assert sentence_bleu("a b", ["a b"]).score == pytest.approx(100.0)
    one_word = sentence_bleu("a", ["a b"], smooth="none")
    assert one_word.score == pytest.approx(100 * math.exp(1 - 2 / 1))


def test_lowercase():
    assert bleu(["The Cat sat on the Mat"], [["the cat sat on the mat"]]).score < 50
    assert bleu(["The Cat sat on the Mat"], [["the cat sat on the mat"]], lowercase=True).score == pytest.approx(100)


def test_tokenize_none_splits_on_whitespace_only():
    result = bleu(["hello, world!"], [["hello , world !"]], tokenize="none")
    assert result.totals[0] == 2 and result.counts[0] == 0
    assert bleu(["hello, world!"], [["hello , world !"]]).score == pytest.approx(100)


def test_result_object():
    result = bleu(["the cat sat on the mat"], [["the cat is on the mat"]])
    assert isinstance(result, BLEUScore)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.score = 1.0  # type: ignore[misc]
    assert len(result.precisions) == len(result.counts) == len(result.totals) == 4
    pattern = (
        r"BLEU = \d+\.\d\d \d+\.\d/\d+\.\d/\d+\.\d/\d+\.\d "
        r"\(BP = \d\.\d{3} ratio = \d+\.\d{3} hyp_len = 6 ref_len = 6\)"
    )
    assert re.fullmatch(pattern, str(result)), str(result)
    assert result.ratio == 1.0


def test_missing_references_given_as_none():
    # Sentence 0 has two references, sentence 1 only one.
    hyps = ["a b c d", "e f g h"]
    with_none = bleu(hyps, [["a b c d", "e f g h"], ["a b", None]])
    assert with_none.ref_len == 8
    assert with_none.score == pytest.approx(100.0)


# ------------------------------------------------------------------------------------------------
# The 13a tokeniser
# ------------------------------------------------------------------------------------------------

TOKENIZE_13A_CASES = [
    ("Hello, world!", "Hello , world !"),
    ("a..b", "a . . b"),
    ("3.14, 1,000,000 and 2.", "3.14 , 1,000,000 and 2 ."),
    (".5 and 5.", ". 5 and 5 ."),
    ("U.S. e.g., A.B.C.", "U . S . e . g . , A . B . C ."),
    ("well-known x-ray -5", "well-known x-ray -5"),
    ("1-2 5- 10-year", "1 - 2 5 - 10 - year"),
    ("it's don't 'quoted'", "it's don't 'quoted'"),
    ('"quoted" (paren) [sq] {cb}', '" quoted " ( paren ) [ sq ] { cb }'),
    ("$5 50% #tag @user a/b A&B a+b=c", "$ 5 50 % # tag @ user a / b A & B a + b = c"),
    ("x^y_z`w|v~u\\t;s:r?q<p>o*n", "x ^ y _ z ` w | v ~ u \\ t ; s : r ? q < p > o * n"),
    ("&quot;hi&quot; &amp; &lt;b&gt;", '" hi " & < b >'),
    ("&amp;quot;", "& quot ;"),  # unescaped once, in the order quot, amp, lt, gt
    ("a<skipped>b <skipped>", "ab"),
    ("hyphen-\nated line\nbreak", "hyphenated line break"),
    ("  many   spaces\tand\ttabs  ", "many spaces and tabs"),
    ("9.,9 ,,, 3..4", "9 . , 9 , , , 3 . . 4"),
    ("Straße naïve ÄÖ — “curly” …", "Straße naïve ÄÖ — “curly” …"),  # non-ASCII is never split
    ("", ""),
]


@pytest.mark.parametrize("text, expected", TOKENIZE_13A_CASES)
def test_tokenize_13a_cases(text, expected):
    assert tokenize_13a(text) == expected


@pytest.mark.parametrize("text, expected", TOKENIZE_13A_CASES)
def test_tokenize_13a_cases_match_sacrebleu(sacrebleu, text, expected):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    assert Tokenizer13a()(text) == expected


def test_tokenize_13a_random_strings_match_sacrebleu(sacrebleu):
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    theirs = Tokenizer13a()
    rng = random.Random(7)
    alphabet = (
        [chr(c) for c in range(32, 127)] * 3
        + list("\n\t\r\xa0äß—“”…€")
        + ["&quot;", "&amp;", "&lt;", "&gt;", "<skipped>", "-\n", "0", "1", "9", ".", ",", "-"] * 4
    )
    for _ in range(3000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert tokenize_13a(text) == theirs(text), repr(text)


# ------------------------------------------------------------------------------------------------
# Errors
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(hypotheses=["a"], references=[["a", "b"]]), ValueError, r"references\[0\] has 2 .* hypotheses has 1"),
        (dict(hypotheses=["a", "b"], references=[["a", "b"], ["a"]]), ValueError, r"references\[1\] has 1"),
        (dict(hypotheses=["a"], references=[]), ValueError, r"references must contain at least one"),
        (dict(hypotheses=[], references=[[]]), ValueError, r"hypotheses must contain at least one"),
        (dict(hypotheses="a b", references=[["a b"]]), TypeError, r"hypotheses must be a list"),
        (dict(hypotheses=["a", 3], references=[["a", "b"]]), TypeError, r"hypotheses\[1\] must be a str"),
        (dict(hypotheses=["a", None], references=[["a", "b"]]), TypeError, r"hypotheses\[1\] must be a str"),
        (dict(hypotheses=["a"], references=["a"]), TypeError, r"references\[0\] must be a list of strings"),
        (dict(hypotheses=["a"], references="a"), TypeError, r"references must be a list of reference streams"),
        (dict(hypotheses=["a"], references=[[b"a"]]), TypeError, r"references\[0\]\[0\] must be a str"),
        (dict(hypotheses=["a"], references=[[None]]), ValueError, r"sentence 0 has no reference"),
        (dict(hypotheses=["a"], references=5), TypeError, r"references must be a list"),
        (dict(hypotheses=["a"], references=[["a"]], tokenize="intl"), ValueError, r"tokenize must be one of"),
        (dict(hypotheses=["a"], references=[["a"]], tokenize="zh"), ValueError, r"tokenize must be one of"),
        (dict(hypotheses=["a"], references=[["a"]], tokenize=None), TypeError, r"tokenize must be a str"),
        (dict(hypotheses=["a"], references=[["a"]], smooth="add-1"), ValueError, r"smooth must be one of"),
        (dict(hypotheses=["a"], references=[["a"]], smooth=None), TypeError, r"smooth must be a str"),
        (dict(hypotheses=["a"], references=[["a"]], lowercase="yes"), TypeError, r"lowercase must be a bool"),
    ],
)
def test_bleu_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        bleu(**kwargs)


@pytest.mark.parametrize(
    "args, kwargs, exc, match",
    [
        (("a", []), {}, ValueError, r"references must contain at least one"),
        (("a", [None]), {}, ValueError, r"references must contain at least one"),
        (("a", "a"), {}, TypeError, r"references must be a list of reference strings"),
        (("a", ["a", 1]), {}, TypeError, r"references\[1\] must be a str"),
        ((["a"], ["a"]), {}, TypeError, r"hypothesis must be a str"),
        ((None, ["a"]), {}, TypeError, r"hypothesis must be a str"),
        (("a", ["a"]), dict(smooth="lin"), ValueError, r"smooth must be one of"),
        (("a", ["a"]), dict(tokenize="13"), ValueError, r"tokenize must be one of"),
    ],
)
def test_sentence_bleu_errors(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        sentence_bleu(*args, **kwargs)


# ------------------------------------------------------------------------------------------------
# Agreement with sacrebleu on random inputs
# ------------------------------------------------------------------------------------------------

VOCAB = (
    "the The cat Cat sat on mat a dog is there THERE 3.14 1,000 2.5 well-known 5-6 7- it's don't U.S. "
    "e.g. \"quoted\" 'single' (paren) $5 &amp; &quot;x&quot; &lt; <skipped> ! ? . , ... -- - x-ray Hello, "
    "world. end. A&B 50% #tag @user a/b naïve Straße STRASSE strasse ÄÖ İstanbul 10 2024 -3 a.m."
).split()
SEPARATORS = [" "] * 12 + ["", "  ", "\t", " \n "]


def _join(rng: random.Random, words: list[str]) -> str:
    out = ""
    for k, word in enumerate(words):
        out += (rng.choice(SEPARATORS) if k else "") + word
    if rng.random() < 0.1:
        out = rng.choice([" ", "  \t", "\n"]) + out + rng.choice([" ", "\n", "  "])
    return out


def _perturb(rng: random.Random, words: list[str]) -> list[str]:
    words = list(words)
    for _ in range(rng.randint(0, 4)):
        op = rng.random()
        if op < 0.25 and words:
            del words[rng.randrange(len(words))]
        elif op < 0.5:
            words.insert(rng.randint(0, len(words)), rng.choice(VOCAB))
        elif op < 0.7 and words:
            words[rng.randrange(len(words))] = rng.choice(VOCAB)
        elif op < 0.85 and len(words) > 1:
            i = rng.randrange(len(words) - 1)
            words[i], words[i + 1] = words[i + 1], words[i]
        elif words:
            i = rng.randrange(len(words))
            words.insert(i, words[i])  # repeated words exercise clipping
    if rng.random() < 0.2:
        words = words[: rng.randint(0, len(words))]  # much shorter
    if rng.random() < 0.2:
        words = words + [rng.choice(VOCAB) for _ in range(rng.randint(1, 8))]  # much longer
    return words


def _random_corpus(seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    n_sentences = rng.randint(1, 12)
    n_refs = rng.randint(1, 3)
    hyps, refs = [], [[] for _ in range(n_refs)]
    for _ in range(n_sentences):
        base = [rng.choice(VOCAB) for _ in range(rng.randint(1, 18))]
        for stream in refs:
            stream.append(_join(rng, _perturb(rng, base)))
        r = rng.random()
        if r < 0.1:
            hyps.append("")
        elif r < 0.15:
            hyps.append(_join(rng, [rng.choice(VOCAB) for _ in range(rng.randint(1, 10))]))
        elif r < 0.2:
            hyps.append(_join(rng, base))
        else:
            hyps.append(_join(rng, _perturb(rng, base)))
    return hyps, refs


def _assert_matches(ours: BLEUScore, theirs, smooth: str) -> None:
    assert ours.score == pytest.approx(theirs.score, abs=0.01)
    assert ours.sys_len == theirs.sys_len
    assert ours.ref_len == theirs.ref_len
    assert ours.bp == pytest.approx(theirs.bp, abs=1e-12)
    assert list(ours.precisions) == pytest.approx(list(theirs.precisions), abs=0.01)
    assert list(ours.totals) == list(theirs.totals[:1]) + [
        t - (1 if smooth == "add-k" and any(ours.counts) else 0) for t in theirs.totals[1:]
    ]
    # sacrebleu's add-k adds k to its reported counts/totals for n >= 2; ours stay raw.
    assert list(ours.counts) == list(theirs.counts[:1]) + [
        c - (1 if smooth == "add-k" and any(ours.counts) else 0) for c in theirs.counts[1:]
    ]
    assert str(ours) == str(theirs)


@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("tokenize", ["13a", "none"])
@pytest.mark.parametrize("smooth", SMOOTHS)
@pytest.mark.parametrize("seed", range(8))
def test_corpus_bleu_matches_sacrebleu(sacrebleu, seed, smooth, tokenize, lowercase):
    hyps, refs = _random_corpus(seed)
    ours = bleu(hyps, refs, tokenize=tokenize, smooth=smooth, lowercase=lowercase)
    theirs = sacrebleu.corpus_bleu(hyps, refs, smooth_method=smooth, tokenize=tokenize, lowercase=lowercase)
    _assert_matches(ours, theirs, smooth)


@pytest.mark.parametrize("lowercase", [False, True])
@pytest.mark.parametrize("tokenize", ["13a", "none"])
@pytest.mark.parametrize("smooth", SMOOTHS)
def test_sentence_bleu_matches_sacrebleu(sacrebleu, smooth, tokenize, lowercase):
    checked = 0
    for seed in range(100, 130):
        hyps, refs = _random_corpus(seed)
        for i, hyp in enumerate(hyps):
            sentence_refs = [stream[i] for stream in refs]
            ours = sentence_bleu(hyp, sentence_refs, tokenize=tokenize, smooth=smooth, lowercase=lowercase)
            theirs = sacrebleu.sentence_bleu(
                hyp, sentence_refs, smooth_method=smooth, tokenize=tokenize, lowercase=lowercase
            )
            _assert_matches(ours, theirs, smooth)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("smooth", SMOOTHS)
def test_special_corpora_match_sacrebleu(sacrebleu, smooth):
    cases = [
        (["the the the the the the the"], [[SEED_REFS[0]], [SEED_REFS[1]]]),
        (["", "", ""], [["a b", "c", "d e f"]]),  # only empty hypotheses
        (["a b c d e f g h", ""], [["a b c", "x y"], ["a b c d e f g h i j", "x y z"]]),
        (["a b", "c"], [["a b", "c d"]]),  # no 3- or 4-grams in the corpus
        (["a"], [[""], ["a b c"]]),  # an empty reference is a real, zero-length reference
        (["x y z w v"], [["x y z w v u t s r q p"]]),  # much shorter than the reference
        (["x y z w v u t s r q p"], [["x y z"]]),  # much longer than the reference
        (["Hello , World !", "the cat."], [["hello, world!", "The cat ."], ["HELLO WORLD", "a cat"]]),
    ]
    for hyps, refs in cases:
        for tokenize in ("13a", "none"):
            for lowercase in (False, True):
                ours = bleu(hyps, refs, tokenize=tokenize, smooth=smooth, lowercase=lowercase)
                theirs = sacrebleu.corpus_bleu(hyps, refs, smooth_method=smooth, tokenize=tokenize, lowercase=lowercase)
                _assert_matches(ours, theirs, smooth)


def test_variable_number_of_references_matches_sacrebleu(sacrebleu):
    hyps = ["a b c d", "e f g h i", "j k"]
    refs = [["a b c d e", "e f g", None], [None, "e f g h i j", "j k l"], ["a b", None, None]]
    for smooth in SMOOTHS:
        ours = bleu(hyps, refs, smooth=smooth)
        theirs = sacrebleu.corpus_bleu(hyps, refs, smooth_method=smooth)
        _assert_matches(ours, theirs, smooth)
