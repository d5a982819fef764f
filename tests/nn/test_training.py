"""Training pieces of seqkernels.nn: each layer against its float64 loop form
(seqkernels.reference.training), finite differences, and torch where torch has the op; optimiser and
clipping parity with torch; Module / Sequential state, save and load."""

import math
import types

import numpy as np
import pytest

import seqkernels as sk
from seqkernels.reference import training as ref
from tests.tolerance import assert_close_rel, numerical_grad

nn = sk.nn
F64 = np.float64


def fd_check(name, loss_fn, arr, analytic, rel=1e-6, n=None, rng=None):
    """Finite differences of ``loss_fn`` w.r.t. ``arr`` (all entries, or ``n`` random ones) against
    the analytic gradient."""
    if n is None or n >= arr.size:
        num = numerical_grad(loss_fn, arr)
        assert_close_rel(name, analytic, num, rel)
    else:
        idx = (rng or np.random.default_rng(0)).choice(arr.size, n, replace=False)
        num = numerical_grad(loss_fn, arr, indices=idx)
        assert_close_rel(name, np.asarray(analytic).reshape(-1)[idx], num, rel)


# ---------------------------------------------------------------------------------------------
# The float64 references against finite differences
# ---------------------------------------------------------------------------------------------


def test_reference_linear_fd(rng):
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    c = rng.standard_normal((2, 3, 5))

    def loss():
        return float((ref.linear_forward(x, w, b) * c).sum())

    dx, dw, db = ref.linear_backward(x, w, c)
    fd_check("dx", loss, x, dx)
    fd_check("dw", loss, w, dw)
    fd_check("db", loss, b, db)


def test_reference_embedding_fd(rng):
    w = rng.standard_normal((6, 3))
    ids = np.array([[1, 0, 5], [1, 1, 2]])
    c = rng.standard_normal((2, 3, 3))
    dw = ref.embedding_backward(6, ids, c)
    fd_check("dw", lambda: float((ref.embedding_forward(w, ids) * c).sum()), w, dw)
    dw_pad = ref.embedding_backward(6, ids, c, padding_idx=1)
    assert not dw_pad[1].any() and np.array_equal(dw_pad[5], dw[5])


def test_reference_cross_entropy_fd(rng):
    z = rng.standard_normal((4, 3, 7)) * 3
    t = rng.integers(0, 7, (4, 3))
    t[0, 1] = t[2, 2] = -100
    loss, dz = ref.softmax_cross_entropy(z, t)
    fd_check("dlogits", lambda: ref.softmax_cross_entropy(z, t)[0], z, dz)
    assert not dz[0, 1].any()
    loss_sum, _ = ref.softmax_cross_entropy(z, t, reduction="sum")
    assert math.isclose(loss_sum, loss * 10, rel_tol=1e-12)


def test_reference_attention_fd(rng):
    q, k = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 6))
    w = rng.standard_normal((4, 6)) * 0.5
    lengths = np.array([5, 2])
    c = rng.standard_normal((3, 2, 6))

    def loss():
        return float((ref.attention_forward(q, k, w, lengths)[0] * c).sum())

    dq, dk, dw = ref.attention_backward(q, k, w, lengths, c)
    fd_check("dq", loss, q, dq)
    fd_check("dk", loss, k, dk)
    fd_check("dw", loss, w, dw)
    assert not dk[2:, 1].any()  # keys past the length get nothing


def test_reference_tanh_and_dropout(rng):
    x, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    fd_check("tanh", lambda: float((np.tanh(x) * c).sum()), x, ref.tanh_backward(np.tanh(x), c))
    mask = rng.random((3, 4)) < 0.7
    fd_check(
        "dropout", lambda: float((ref.dropout_forward(x, mask, 0.3) * c).sum()), x, ref.dropout_backward(c, mask, 0.3)
    )


# ---------------------------------------------------------------------------------------------
# Layers against the references and finite differences (float64)
# ---------------------------------------------------------------------------------------------


def test_linear_matches_reference_and_fd(rng):
    lin = nn.Linear(4, 5, dtype=F64, seed=1)
    x = rng.standard_normal((2, 3, 4))
    c = rng.standard_normal((2, 3, 5))
    y = lin(x)
    assert_close_rel("y", y, ref.linear_forward(x, lin.params["weight"], lin.params["bias"]), 1e-13)
    dx = lin.backward(c)
    rdx, rdw, rdb = ref.linear_backward(x, lin.params["weight"], c)
    assert_close_rel("dx", dx, rdx, 1e-13)
    assert_close_rel("dw", lin.grads["weight"], rdw, 1e-13)
    assert_close_rel("db", lin.grads["bias"], rdb, 1e-13)
    lin.eval()
    fd_check("dx fd", lambda: float((lin(x) * c).sum()), x, dx)
    fd_check("dw fd", lambda: float((lin(x) * c).sum()), lin.params["weight"], rdw)

    nobias = nn.Linear(4, 2, bias=False, dtype=F64)
    nobias(x)
    nobias.backward(np.ones((2, 3, 2)))
    assert set(nobias.grads) == {"weight"}


def test_embedding_matches_reference_and_fd(rng):
    emb = nn.Embedding(7, 3, padding_idx=2, dtype=F64, seed=0)
    assert not emb.params["weight"][2].any()
    ids = np.array([[0, 2, 6], [6, 6, 1]])
    c = rng.standard_normal((2, 3, 3))
    out = emb(ids)
    assert_close_rel("out", out, ref.embedding_forward(emb.params["weight"], ids), 0)
    assert emb.backward(c) is None
    want = ref.embedding_backward(7, ids, c, padding_idx=2)
    assert_close_rel("dw", emb.grads["weight"], want, 1e-14)
    emb.eval()
    num = numerical_grad(lambda: float((emb(ids) * c).sum()), emb.params["weight"])
    num[2] = 0.0  # torch convention: the padding row never gets a gradient
    assert_close_rel("dw fd", emb.grads["weight"], num, 1e-6)


def test_tanh_and_dropout_layers(rng):
    x, c = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    th = nn.Tanh()
    y = th(x)
    assert_close_rel("tanh backward", th.backward(c), ref.tanh_backward(y, c), 1e-14)

    d1, d2 = nn.Dropout(0.3, seed=5), nn.Dropout(0.3, seed=5)
    y1, y2 = d1(x), d2(x)
    assert np.array_equal(y1, y2)  # seeded
    mask = y1 != 0
    assert_close_rel("dropout fwd", y1, ref.dropout_forward(x, mask, 0.3), 1e-15)
    assert_close_rel("dropout bwd", d1.backward(c), ref.dropout_backward(c, mask, 0.3), 1e-15)
    assert np.array_equal(d1.eval()(x), x)
    big = nn.Dropout(0.25, seed=0)(np.ones((200, 200)))
    assert abs((big == 0).mean() - 0.25) < 0.01 and abs(big.mean() - 1.0) < 0.02
    z = nn.Dropout(0.0)
    assert np.array_equal(z(x), x) and np.array_equal(z.backward(c), c)


def test_attention_matches_reference_and_fd(rng):
    att = nn.Attention(4, 6, dtype=F64, seed=3)
    q, k = rng.standard_normal((3, 2, 4)), rng.standard_normal((5, 2, 6))
    lengths = np.array([5, 2])
    c = rng.standard_normal((3, 2, 6))
    ctx = att(q, k, lengths)
    rctx, ratt = ref.attention_forward(q, k, att.params["weight"], lengths)
    assert_close_rel("context", ctx, rctx, 1e-13)
    assert_close_rel("weights", att.weights, ratt, 1e-13)
    dq, dk = att.backward(c)
    rdq, rdk, rdw = ref.attention_backward(q, k, att.params["weight"], lengths, c)
    assert_close_rel("dq", dq, rdq, 1e-12)
    assert_close_rel("dk", dk, rdk, 1e-12)
    assert_close_rel("dw", att.grads["weight"], rdw, 1e-12)
    att.eval()
    fd_check("dq fd", lambda: float((att(q, k, lengths) * c).sum()), q, dq)
    fd_check("dk fd", lambda: float((att(q, k, lengths) * c).sum()), k, dk)
    fd_check("dw fd", lambda: float((att(q, k, lengths) * c).sum()), att.params["weight"], rdw)
    att.train()
    full = att(q, k)  # no lengths: every key counts
    assert_close_rel("no lengths", full, ref.attention_forward(q, k, att.params["weight"], [5, 5])[0], 1e-13)


def test_cross_entropy_matches_reference_and_fd(rng):
    z = rng.standard_normal((4, 3, 7)) * 3
    t = rng.integers(0, 7, (4, 3))
    t[1, 1] = t[3, 0] = 0
    for ignore in (-100, 0):
        loss, dz = nn.softmax_cross_entropy(z, t, ignore_index=ignore)
        rloss, rdz = ref.softmax_cross_entropy(z, t, ignore_index=ignore)
        assert math.isclose(loss, rloss, rel_tol=1e-13)
        assert_close_rel("dz", dz, rdz, 1e-13)
    fd_check("dz fd", lambda: nn.softmax_cross_entropy(z, t, ignore_index=0)[0], z, dz)
    loss, dz = nn.softmax_cross_entropy(z, np.zeros_like(t), ignore_index=0)
    assert loss == 0.0 and not dz.any()  # nothing counted: 0, not NaN
    big = np.array([[1000.0, -1000.0, 0.0]], dtype=np.float32)
    loss, dz = nn.softmax_cross_entropy(big, np.array([1]))
    assert math.isfinite(loss) and np.isfinite(dz).all() and dz.dtype == np.float32
    assert_close_rel("log_softmax", nn.log_softmax(z), ref.log_softmax(z), 1e-13)


def test_sequential_end_to_end_fd(rng):
    """Embedding -> LSTM (2 layers, bidirectional) -> Tanh -> Linear -> cross-entropy, float64: the
    chain rule through Sequential matches finite differences on every parameter tensor."""
    model = nn.Sequential(
        nn.Embedding(6, 3, padding_idx=0, dtype=F64, seed=1),
        nn.LSTM(3, 4, num_layers=2, bidirectional=True, dtype=F64, seed=2, num_threads=1),
        nn.Tanh(),
        nn.Linear(8, 6, dtype=F64, seed=3),
    )
    ids = rng.integers(0, 6, (5, 2))
    targets = rng.integers(0, 6, (5, 2))
    targets[4, 1] = -100

    def loss():
        return nn.softmax_cross_entropy(model(ids), targets)[0]

    with nn.single_threaded_blas():  # many tiny forwards: keep NumPy's BLAS threads out of the way
        _, dz = nn.softmax_cross_entropy(model(ids), targets)
        model.backward(dz)
        grads = dict(model.named_grads())
        params = dict(model.named_parameters())
        assert set(grads) == set(params)
        for name in params:
            fd_check(name, loss, params[name], grads[name], rel=1e-5, n=6, rng=rng)


# ---------------------------------------------------------------------------------------------
# torch parity
# ---------------------------------------------------------------------------------------------

torch = pytest.importorskip("torch")


def test_layers_match_torch(rng):
    tlin = torch.nn.Linear(5, 3).double()
    lin = nn.Linear(5, 3, dtype=F64)
    lin.load_state_dict(tlin.state_dict())
    x = rng.standard_normal((4, 2, 5))
    c = rng.standard_normal((4, 2, 3))
    xt = torch.from_numpy(x).requires_grad_()
    (tlin(xt) * torch.from_numpy(c)).sum().backward()
    assert_close_rel("linear y", lin(x), tlin(torch.from_numpy(x)).detach(), 1e-14)
    assert_close_rel("linear dx", lin.backward(c), xt.grad, 1e-14)
    assert_close_rel("linear dw", lin.grads["weight"], tlin.weight.grad, 1e-14)
    assert_close_rel("linear db", lin.grads["bias"], tlin.bias.grad, 1e-14)

    temb = torch.nn.Embedding(7, 3, padding_idx=1).double()
    emb = nn.Embedding(7, 3, padding_idx=1, dtype=F64)
    emb.load_state_dict(temb.state_dict())
    ids = rng.integers(0, 7, (4, 5))
    c = rng.standard_normal((4, 5, 3))
    (temb(torch.from_numpy(ids)) * torch.from_numpy(c)).sum().backward()
    emb(ids)
    emb.backward(c)
    assert_close_rel("embedding dw", emb.grads["weight"], temb.weight.grad, 1e-14)


def test_cross_entropy_matches_torch(rng):
    for dtype, rel in ((np.float32, 1e-5), (np.float64, 1e-13)):
        z = (rng.standard_normal((6, 4, 11)) * 4).astype(dtype)
        t = rng.integers(0, 11, (6, 4))
        t[0, :2] = 3
        for reduction in ("mean", "sum"):
            zt = torch.from_numpy(z).requires_grad_()
            tl = torch.nn.functional.cross_entropy(
                zt.reshape(-1, 11), torch.from_numpy(t).reshape(-1), ignore_index=3, reduction=reduction
            )
            tl.backward()
            loss, dz = nn.softmax_cross_entropy(z, t, ignore_index=3, reduction=reduction)
            assert math.isclose(loss, tl.item(), rel_tol=rel)
            assert dz.dtype == dtype
            assert_close_rel(f"dz {dtype.__name__} {reduction}", dz, zt.grad, rel)


def _param_module(arrays):
    m = nn.Module()
    for i, a in enumerate(arrays):
        m.params[f"p{i}"] = a.copy()
    return m


OPTIMIZERS = {
    "sgd": (nn.SGD, torch.optim.SGD, {"lr": 0.1}),
    "sgd_momentum_wd": (nn.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}),
    "sgd_dampening": (nn.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.5, "dampening": 0.3}),
    "sgd_nesterov": (nn.SGD, torch.optim.SGD, {"lr": 0.05, "momentum": 0.9, "nesterov": True}),
    "adam": (nn.Adam, torch.optim.Adam, {"lr": 0.01}),
    "adam_wd_betas": (nn.Adam, torch.optim.Adam, {"lr": 0.003, "betas": (0.8, 0.99), "eps": 1e-6, "weight_decay": 0.1}),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS) + ["adamw"])
def test_optimizer_matches_torch_and_reference(name, dtype, rng):
    """Ten steps with fresh random gradients; one parameter misses its gradient every third step
    (torch: grad None -> skipped, Adam's step count not advanced)."""
    if name == "adamw":
        ours_cls, torch_cls, kw = nn.Adam, torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.05}
        ours_kw = dict(kw, decoupled_weight_decay=True)
    else:
        ours_cls, torch_cls, kw = OPTIMIZERS[name]
        ours_kw = kw
    arrays = [rng.standard_normal((3, 4)).astype(dtype), rng.standard_normal(5).astype(dtype)]
    module = _param_module(arrays)
    tparams = [torch.from_numpy(a.copy()).requires_grad_() for a in arrays]
    opt, topt = ours_cls(module, **ours_kw), torch_cls(tparams, **kw)
    refp = [a.astype(F64) for a in arrays]
    rstate = [{} for _ in arrays]
    rel = 1e-5 if dtype == np.float32 else 1e-12
    for it in range(10):
        grads = [rng.standard_normal(a.shape).astype(dtype) for a in arrays]
        use = [True, it % 3 != 2]
        module.grads = {f"p{i}": g.copy() for i, g in enumerate(grads) if use[i]}
        for tp, g, u in zip(tparams, grads, use):
            tp.grad = torch.from_numpy(g.copy()) if u else None
        opt.step()
        topt.step()
        for i, g in enumerate(grads):
            if not use[i]:
                continue
            st = rstate[i]
            if ours_cls is nn.SGD:
                refp[i], st["buf"] = ref.sgd_step(refp[i], g, st.get("buf"), **kw)
            else:
                st["t"] = st.get("t", 0) + 1
                refp[i], st["m"], st["v"] = ref.adam_step(
                    refp[i], g, st.get("m", 0.0), st.get("v", 0.0), st["t"], **ours_kw
                )
        for i, tp in enumerate(tparams):
            assert_close_rel(f"{name} step {it} p{i} vs torch", module.params[f"p{i}"], tp.detach(), rel)
            assert_close_rel(f"{name} step {it} p{i} vs reference", module.params[f"p{i}"], refp[i], rel)
            assert module.params[f"p{i}"].dtype == dtype


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, rng):
    grads = [rng.standard_normal((4, 3)), rng.standard_normal(7) * 3]
    tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
    for tp, g in zip(tps, grads):
        tp.grad = torch.from_numpy(g.copy())
    tnorm = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=norm_type)
    mine = [g.copy() for g in grads]
    norm = nn.clip_grad_norm(mine, max_norm, norm_type=norm_type)
    rgrads, rnorm = ref.clip_grad_norm(grads, max_norm, norm_type)
    assert math.isclose(norm, tnorm.item(), rel_tol=1e-12) and math.isclose(norm, rnorm, rel_tol=1e-12)
    for m, tp, r in zip(mine, tps, rgrads):
        assert_close_rel("clipped vs torch", m, tp.grad, 1e-12)
        assert_close_rel("clipped vs reference", m, r, 1e-12)


def test_clip_grad_norm_on_a_module(rng):
    lin = nn.Linear(3, 2, dtype=F64)
    lin(rng.standard_normal((4, 3)))
    lin.backward(rng.standard_normal((4, 2)) * 100)
    before = math.sqrt(sum(float((g**2).sum()) for g in lin.grads.values()))
    assert math.isclose(nn.clip_grad_norm(lin, 1.0), before)
    after = math.sqrt(sum(float((g**2).sum()) for g in lin.grads.values()))
    assert math.isclose(after, 1.0, rel_tol=1e-5)
    bad = {"a": np.array([np.inf, 1.0])}
    assert nn.clip_grad_norm(bad, 1.0) == math.inf and bad["a"][1] == 1.0  # nothing scaled


# ---------------------------------------------------------------------------------------------
# Modules: names, modes, state, save/load, frozen and pretrained embeddings
# ---------------------------------------------------------------------------------------------


class TwoLayer(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        self.embedding = nn.Embedding(9, 4, seed=seed)
        self.rnn = nn.GRU(4, 5, seed=seed + 1, num_threads=1)
        self.head = nn.Linear(5, 3, seed=seed + 2)
        self.params["scale"] = np.ones(3, np.float32)


def test_module_names_modes_and_save_load_round_trip(tmp_path):
    a, b = TwoLayer(seed=0), TwoLayer(seed=10)
    names = [k for k, _ in a.named_parameters()]
    assert names == [
        "scale",
        "embedding.weight",
        "rnn.weight_ih_l0",
        "rnn.weight_hh_l0",
        "rnn.bias_ih_l0",
        "rnn.bias_hh_l0",
        "head.weight",
        "head.bias",
    ]
    assert a.num_parameters() == 3 + 36 + (15 * 4 + 15 * 5 + 30) + 18
    a.eval()
    assert not a.training and not a.rnn.training and not a.head.training
    a.train()
    assert a.embedding.training
    path = a.save(tmp_path / "model")
    assert path.endswith(".npz")
    head_w = b.head.params["weight"]
    b.load(path)
    assert b.head.params["weight"] is head_w  # loaded in place: optimiser references stay valid
    for (k1, v1), (k2, v2) in zip(a.named_parameters(), b.named_parameters()):
        assert k1 == k2 and np.array_equal(v1, v2)
    sd = a.state_dict()
    sd["head.weight"][:] = 0  # a copy
    assert a.head.params["weight"].any()
    with pytest.raises(ValueError, match="missing"):
        b.load_state_dict({k: v for k, v in sd.items() if k != "head.bias"})
    with pytest.raises(ValueError, match="unexpected"):
        b.load_state_dict(dict(sd, extra=np.zeros(1)))
    with pytest.raises(ValueError, match=r"head.weight|weight"):
        b.load_state_dict(dict(sd, **{"head.weight": np.zeros((2, 2))}))
    b.load_state_dict({"head.bias": np.full(3, 7.0)}, strict=False)
    assert (b.head.params["bias"] == 7).all()


def test_module_zero_grad_and_torch_state_dict(rng):
    m = nn.Sequential(nn.Linear(3, 4), nn.LSTM(4, 2))
    m(rng.standard_normal((2, 1, 3)).astype(np.float32))
    m.backward(np.ones((2, 1, 2), np.float32))
    assert len(m.named_grads()) == 6
    m.zero_grad()
    assert m.named_grads() == []
    tm = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LSTM(4, 2))
    m.load_state_dict(tm.state_dict())  # torch names "1.weight_ih_l0" load unchanged
    assert_close_rel("loaded", m[1].params["weight_hh_l0"], tm[1].weight_hh_l0.detach(), 0)


def test_frozen_embedding_is_not_updated(rng):
    emb = nn.Embedding(5, 2, freeze=True)
    lin = nn.Linear(2, 5)
    model = nn.Sequential(emb, lin)
    before = emb.params["weight"].copy()
    opt = nn.Adam(model, lr=0.1)
    for _ in range(3):
        _, dz = nn.softmax_cross_entropy(model(np.array([1, 2])), np.array([3, 4]))
        model.backward(dz)
        opt.step()
    assert np.array_equal(emb.params["weight"], before)
    assert "0.weight" not in dict(model.named_grads()) and "0.weight" in model.state_dict()


def test_embedding_from_word_vectors_and_pretrained():
    wv = types.SimpleNamespace(words=["the", "cat", "sat"], vectors=np.arange(6, dtype=np.float64).reshape(3, 2))
    emb = nn.Embedding.from_word_vectors(wv, ["<PAD>", "The", "dog", "sat"], padding_idx=0, seed=0)
    w = emb.params["weight"]
    assert emb.found == 2 and emb.missing == ["<PAD>", "dog"]
    assert np.array_equal(w[1], [0, 1]) and np.array_equal(w[3], [4, 5]) and not w[0].any()
    assert not emb.freeze
    own = nn.Embedding.from_word_vectors(wv, freeze=True)
    assert own.freeze and np.array_equal(own.params["weight"], wv.vectors)
    pre = nn.Embedding.from_pretrained(np.eye(3))
    assert pre.freeze and pre.num_embeddings == 3
    with pytest.raises(TypeError, match="word_vectors"):
        nn.Embedding.from_word_vectors(object())
    with pytest.raises(ValueError, match="word_vectors"):
        nn.Embedding.from_word_vectors(types.SimpleNamespace(words=["a"], vectors=np.zeros((2, 3))))


def test_optimizer_state_dict_round_trip(rng):
    m1, m2 = _param_module([np.ones(3)]), _param_module([np.ones(3)])
    o1, o2 = nn.Adam(m1, lr=0.1), nn.Adam(m2, lr=0.5)
    for _ in range(2):
        m1.grads = {"p0": np.array([1.0, -2.0, 3.0])}
        o1.step()
    m2.load_state_dict(m1.state_dict())
    o2.load_state_dict(o1.state_dict())
    m1.grads = m2.grads = {"p0": np.array([0.5, 0.5, 0.5])}
    o1.step()
    o2.step()
    assert o2.lr == 0.1 and np.array_equal(m1.params["p0"], m2.params["p0"])


# ---------------------------------------------------------------------------------------------
# Errors name the argument
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: nn.Linear(0, 3), ValueError, "in_features"),
        (lambda: nn.Linear(3, 2, dtype=np.int32), TypeError, "dtype"),
        (lambda: nn.Linear(3, 2)(np.ones((2, 4))), ValueError, "x"),
        (lambda: nn.Linear(3, 2)(np.ones((2, 3), np.int64)), TypeError, "x"),
        (lambda: nn.Linear(3, 2).backward(np.ones((2, 2))), ValueError, "forward"),
        (lambda: nn.Embedding(5, 2)(np.array([5])), ValueError, "ids"),
        (lambda: nn.Embedding(5, 2)(np.array([1.0])), TypeError, "ids"),
        (lambda: nn.Embedding(5, 2, padding_idx=9), ValueError, "padding_idx"),
        (lambda: nn.Dropout(1.0), ValueError, "p"),
        (lambda: nn.Attention(2, 3)(np.ones((1, 2, 2)), np.ones((4, 2, 3)), [0, 4]), ValueError, "lengths"),
        (lambda: nn.Attention(2, 3)(np.ones((1, 2, 2)), np.ones((4, 1, 3))), ValueError, "keys"),
        (lambda: nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 3])), ValueError, "targets"),
        (lambda: nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0])), ValueError, "targets"),
        (lambda: nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0.0, 1.0])), TypeError, "targets"),
        (lambda: nn.softmax_cross_entropy(np.ones((2, 3)), np.array([0, 1]), reduction="max"), ValueError, "reduction"),
        (lambda: nn.SGD(nn.Linear(2, 2), lr=0), ValueError, "lr"),
        (lambda: nn.SGD(nn.Linear(2, 2), nesterov=True), ValueError, "nesterov"),
        (lambda: nn.Adam(nn.Linear(2, 2), betas=(0.9, 1.0)), ValueError, "betas"),
        (lambda: nn.Adam([np.ones(2)]), TypeError, "module"),
        (lambda: nn.clip_grad_norm([np.ones(2)], -1.0), ValueError, "max_norm"),
        (lambda: nn.Sequential(nn.Linear(2, 2), "relu"), TypeError, "layers"),
        (lambda: nn.Linear(2, 2).load_state_dict([]), TypeError, "state_dict"),
    ],
)
def test_errors_name_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
