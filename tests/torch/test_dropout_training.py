"""Dropout between layers behaves as torch.nn's (same masks from the same seed, none in eval
mode), and a small model trains identically with seqkernels.torch.LSTM or torch.nn.LSTM."""

import warnings

import pytest

torch = pytest.importorskip("torch")
from torch.nn.utils.rnn import pack_padded_sequence  # noqa: E402

import seqkernels.torch as skt  # noqa: E402
from tests.torch.helpers import CELLS, REL, compare, make_pair  # noqa: E402


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("packed", [False, True], ids=["tensor", "packed"])
def test_dropout_same_masks_as_torch_from_the_same_seed(cell, packed):
    """torch.nn draws one mask per layer output but the last (over the packed rows for a
    PackedSequence); seqkernels.torch draws the same masks in the same order."""
    ours, ref = make_pair(cell, 5, 9, num_layers=3, bidirectional=True, dropout=0.4, batch_first=True)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(4, 6, 5, generator=gen, requires_grad=True)
    inp = pack_padded_sequence(x, torch.tensor([3, 6, 1, 4]), batch_first=True, enforce_sorted=False) if packed else x
    ours.train(), ref.train()

    class Seeded(torch.nn.Module):  # reseed before each forward so both draw the same masks
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, *a):
            torch.manual_seed(1234)
            return self.m(*a)

    compare(Seeded(ours), Seeded(ref), inp, None, {"x": x}, REL[torch.float32], gen)


def test_dropout_statistics_and_eval_mode():
    # A ReLU RNN whose layer 0 outputs exactly 1 everywhere (bias 1, no weights) and whose layer 1
    # passes its input through (W_ih = I): layer 1's output is the dropout mask itself.
    probe = skt.RNN(8, 64, num_layers=2, nonlinearity="relu", dropout=0.25)
    with torch.no_grad():
        for p in probe.parameters():
            p.zero_()
        probe.bias_ih_l0.fill_(1.0)
        probe.weight_ih_l1.copy_(torch.eye(64))
    x = torch.randn(20, 16, 8)
    with torch.no_grad():
        y, _ = probe(x)
    dropped, kept = y == 0, y == 1 / 0.75
    assert bool((dropped | kept).all()), "dropout must zero entries or scale them by 1/(1-p)"
    assert 0.23 < dropped.float().mean().item() < 0.27
    # eval mode: no dropout, deterministic, equal to the same weights without dropout
    torch.manual_seed(0)
    m = skt.GRU(8, 32, num_layers=2, dropout=0.5)
    no_drop = skt.GRU(8, 32, num_layers=2)
    no_drop.load_state_dict(m.state_dict())
    with torch.no_grad():
        assert not torch.equal(m(x)[0], m(x)[0])  # training mode: fresh masks each call
        m.eval()
        assert torch.equal(m(x)[0], no_drop(x)[0])
        assert torch.equal(m(x)[0], m(x)[0])


def test_dropout_one_and_single_layer_warning():
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        skt.LSTM(3, 4, dropout=0.5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        skt.LSTM(3, 4, num_layers=2, dropout=0.5)
    ours, ref = make_pair("lstm", 3, 4, num_layers=2, dropout=1.0)
    x = torch.randn(5, 2, 3)
    torch.testing.assert_close(ours(x)[0], ref(x)[0], rtol=1e-5, atol=1e-6)  # layer 1 sees zeros


class TaggerModel(torch.nn.Module):
    """Embedding -> 2-layer bidirectional LSTM (dropout) -> Linear, per-token classification."""

    def __init__(self, rnn_cls, vocab=11, emb=6, hidden=13, classes=3):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, emb)
        self.rnn = rnn_cls(emb, hidden, num_layers=2, bidirectional=True, batch_first=True, dropout=0.2)
        self.out = torch.nn.Linear(2 * hidden, classes)

    def forward(self, tokens, lengths):
        packed = pack_padded_sequence(self.emb(tokens), lengths, batch_first=True, enforce_sorted=False)
        y, _ = self.rnn(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=tokens.shape[1])
        return self.out(y)


def _toy_batch(gen, B=8, T=9, vocab=11):
    """Tag each token with (number of tokens so far that are >= 6) mod 3: needs memory."""
    tokens = torch.randint(1, vocab, (B, T), generator=gen)
    lengths = torch.randint(2, T + 1, (B,), generator=gen)
    lengths[0] = T
    tags = (tokens >= 6).long().cumsum(1) % 3
    mask = torch.arange(T)[None, :] < lengths[:, None]
    return tokens * mask, lengths, torch.where(mask, tags, torch.full_like(tags, -100))


def test_small_model_trains_identically():
    torch.manual_seed(0)
    ref = TaggerModel(torch.nn.LSTM)
    ours = TaggerModel(skt.LSTM)
    ours.load_state_dict(ref.state_dict())  # same keys, the LSTM's included
    opts = {m: torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9) for m in (ref, ours)}
    gen = torch.Generator().manual_seed(3)
    batches = [_toy_batch(gen) for _ in range(8)]
    losses = {ref: [], ours: []}
    for step, (tokens, lengths, tags) in enumerate(batches):
        for m in (ref, ours):
            torch.manual_seed(100 + step)  # the same dropout masks for both
            logits = m(tokens, lengths)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 3), tags.reshape(-1), ignore_index=-100)
            opts[m].zero_grad()
            loss.backward()
            opts[m].step()
            losses[m].append(loss.item())
    for a, b in zip(losses[ours], losses[ref]):
        assert abs(a - b) <= 1e-5 * abs(b), (losses[ours], losses[ref])
    assert losses[ref][-1] < losses[ref][0]  # it does learn
    for (name, a), b in zip(ours.named_parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
