"""patch() / unpatch() / patched(): torch.nn's recurrent classes become the drop-ins for code that
builds them itself, and come back afterwards."""

import pytest

torch = pytest.importorskip("torch")

import seqkernels.torch as skt  # noqa: E402

NAMES = ("LSTM", "GRU", "RNN", "LSTMCell", "GRUCell", "RNNCell")
NAMESPACES = ("torch.nn", "torch.nn.modules", "torch.nn.modules.rnn")


def _classes():
    import importlib

    return {(ns, n): getattr(importlib.import_module(ns), n) for ns in NAMESPACES for n in NAMES}


@pytest.fixture(autouse=True)
def restored():
    before = _classes()
    yield
    skt.unpatch()
    assert _classes() == before


def test_patch_and_unpatch_every_name():
    torch_classes = _classes()
    skt.patch()
    skt.patch()  # idempotent
    assert skt.is_patched()
    for (ns, n), cls in _classes().items():
        assert cls is getattr(skt, n), f"{ns}.{n}"
    skt.unpatch()
    assert not skt.is_patched() and _classes() == torch_classes
    skt.unpatch()  # a no-op when not patched


def _library_model():
    """Stands for library code that builds its layers through the torch.nn namespace."""

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = torch.nn.LSTM(4, 6, batch_first=True, bidirectional=True)
            self.cell = torch.nn.modules.rnn.GRUCell(12, 6)

        def forward(self, x):
            y, _ = self.rnn(x)
            return self.cell(y[:, -1])

    return Encoder()


def test_models_built_while_patched_use_the_drop_ins_and_match_torch():
    torch.manual_seed(0)
    reference = _library_model()
    with skt.patched():
        torch.manual_seed(0)
        patched = _library_model()
    assert isinstance(patched.rnn, skt.LSTM) and isinstance(patched.cell, skt.GRUCell)
    assert isinstance(reference.rnn, torch.nn.LSTM)  # built before: torch's, and torch.nn.LSTM is back
    patched.load_state_dict(reference.state_dict())
    x = torch.randn(3, 5, 4)
    torch.testing.assert_close(patched(x), reference(x), rtol=1e-5, atol=1e-6)


def test_context_manager_restores_after_an_exception_and_respects_an_outer_patch():
    with pytest.raises(KeyError):
        with skt.patched():
            raise KeyError("boom")
    assert not skt.is_patched()
    skt.patch()
    with skt.patched():
        pass
    assert skt.is_patched() and torch.nn.LSTM is skt.LSTM
