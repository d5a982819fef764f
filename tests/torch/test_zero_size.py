"""Zero-size inputs side by side with torch.nn: an empty batch keeps the gradient path (backward
works, every gradient is zeros of its parameter's shape); an empty sequence and other zero sizes
raise the exception type torch.nn raises."""

import pytest

torch = pytest.importorskip("torch")

from tests.torch.helpers import CELLS, make_pair, raised_type  # noqa: E402


def _hidden_list(hidden):
    return list(hidden) if isinstance(hidden, tuple) else [hidden]


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("with_hx", [False, True])
def test_empty_batch_keeps_the_gradient_path(cell, batch_first, with_hx):
    pair = make_pair(cell, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first)
    results = []
    for m in pair:
        x = torch.randn((0, 5, 3) if batch_first else (5, 0, 3), requires_grad=True)
        hx = None
        if with_hx:
            hx = torch.randn(4, 0, 4, requires_grad=True)
            hx = (hx, torch.randn(4, 0, 4, requires_grad=True)) if cell == "lstm" else hx
        y, hidden = m(x, hx)
        outs = [y, *_hidden_list(hidden)]
        assert all(o.requires_grad for o in outs)
        sum(o.sum() for o in outs).backward()
        grads = [x.grad, *(t.grad for t in _hidden_list(hx) if hx is not None)]
        results.append(
            (
                [o.shape for o in outs],
                [g.shape for g in grads],
                [(p.grad.shape, bool(p.grad.eq(0).all())) for p in m.parameters()],
            )
        )
    assert results[0] == results[1]
    assert all(zero for _, zero in results[0][2])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_empty_batch_without_gradients(cell):
    ours, ref = make_pair(cell, 3, 4)
    with torch.no_grad():
        y, y_ref = ours(torch.randn(2, 0, 3))[0], ref(torch.randn(2, 0, 3))[0]
    assert y.shape == y_ref.shape == (2, 0, 4) and y.grad_fn is None


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize(
    "shape",
    [(0, 2, 3), (0, 0, 3), (0, 3), (5, 2, 0), (0, 2, 0)],
    ids=["seq0", "seq0_batch0", "unbatched_seq0", "feature0", "seq0_feature0"],
)
def test_zero_sizes_raise_like_torch(cell, shape):
    ours, ref = make_pair(cell, 3, 4)
    x = torch.randn(shape)
    want = raised_type(lambda: ref(x))
    assert want is not None
    with pytest.raises(want) as info:
        ours(x)
    assert "input" in str(info.value)


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("arg", ["input_size", "hidden_size", "num_layers"])
def test_zero_constructor_sizes_raise_like_torch(cell, arg):
    ours_cls, torch_cls, extra = CELLS[cell]
    kwargs = {"input_size": 3, "hidden_size": 4, "num_layers": 1, **extra, arg: 0}
    want = raised_type(lambda: torch_cls(**kwargs))
    with pytest.raises(want, match=arg):
        ours_cls(**kwargs)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_state_with_the_wrong_batch_for_an_empty_input(cell):
    ours, ref = make_pair(cell, 3, 4)
    x = torch.randn(5, 0, 3)
    h = torch.randn(1, 2, 4)
    hx = (h, h.clone()) if cell == "lstm" else h
    want = raised_type(lambda: ref(x, hx))
    assert want is not None
    with pytest.raises(want, match="hx"):
        ours(x, hx)
