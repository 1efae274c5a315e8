"""The swap the README promises: a model's init code run once with ``torch.nn.init`` and once with
``triton_init`` (``import triton_init as init``) gives the same distributions and the same errors."""

import math

import pytest
import torch
from scipy import stats
from torch import nn

import triton_init


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 64)
        self.stem = nn.Conv2d(3, 32, 3)
        self.identity_conv = nn.Conv2d(32, 32, 3, padding=1)
        self.grouped_conv = nn.Conv1d(32, 32, 3, groups=4)
        self.skip = nn.Linear(64, 64)
        self.proj = nn.Linear(64, 256)
        self.recurrent = nn.Linear(256, 256, bias=False)
        self.mlp = nn.Linear(256, 512)
        self.head = nn.Linear(512, 300)
        self.sparse = nn.Linear(300, 400, bias=False)
        self.norm = nn.LayerNorm(64)


def init_weights(model: Net, init) -> None:
    """Typical init code, touching every torch.nn.init function once; ``init`` is the module to use."""
    init.normal_(model.embed.weight, std=0.02)
    init.kaiming_normal_(model.stem.weight, mode="fan_out", nonlinearity="relu")
    init.zeros_(model.stem.bias)
    init.dirac_(model.identity_conv.weight)
    init.constant_(model.identity_conv.bias, 0.1)
    init.dirac_(model.grouped_conv.weight, groups=4)
    init.zeros_(model.grouped_conv.bias)
    init.eye_(model.skip.weight)
    init.zeros_(model.skip.bias)
    init.xavier_uniform_(model.proj.weight, gain=init.calculate_gain("tanh"))
    init.uniform_(model.proj.bias, -0.1, 0.1)
    init.orthogonal_(model.recurrent.weight, gain=init.calculate_gain("relu"))
    init.kaiming_uniform_(model.mlp.weight, a=math.sqrt(5))
    init.trunc_normal_(model.mlp.bias, std=0.02, a=-0.04, b=0.04)
    init.xavier_normal_(model.head.weight)
    init.normal_(model.head.bias, 0.0, 1e-3)
    init.sparse_(model.sparse.weight, sparsity=0.9, std=0.01)
    init.ones_(model.norm.weight)
    init.zeros_(model.norm.bias)


def _both():
    torch.manual_seed(0)
    theirs = Net()
    init_weights(theirs, torch.nn.init)
    ours = Net()
    init_weights(ours, triton_init)
    return dict(theirs.named_parameters()), dict(ours.named_parameters())


DETERMINISTIC = ["stem.bias", "identity_conv.weight", "identity_conv.bias", "grouped_conv.weight",
                 "grouped_conv.bias", "skip.weight", "skip.bias", "norm.weight", "norm.bias"]


def test_same_values_where_deterministic_same_distributions_elsewhere():
    theirs, ours = _both()
    assert theirs.keys() == ours.keys()
    for name in DETERMINISTIC:
        assert torch.equal(ours[name], theirs[name]), name
    for name in sorted(theirs.keys() - set(DETERMINISTIC)):
        t, o = theirs[name].detach(), ours[name].detach()
        # the std of n samples has a relative spread of about 1 / sqrt(2n); allow 6 of those (and 5%).
        tol = max(6 / math.sqrt(2 * t.numel()), 0.05) if t.numel() > 100 else 0.5
        if name == "sparse.weight":
            t, o = t[t != 0], o[o != 0]
            assert (ours[name] == 0).sum(0).tolist() == (theirs[name] == 0).sum(0).tolist()
        assert o.std().item() == pytest.approx(t.std().item(), rel=tol), name
        assert o.abs().max().item() <= t.abs().max().item() * 1.5 + 1e-6, name
        # the same distribution as torch's draw: a two-sample KS test (fixed seeds: deterministic)
        assert stats.ks_2samp(t.flatten().double().numpy(), o.flatten().double().numpy()).pvalue > 1e-3, name
    gram = ours["recurrent.weight"].detach().double() @ ours["recurrent.weight"].detach().double().t()
    assert torch.allclose(gram, 2 * torch.eye(256, dtype=torch.float64), atol=1e-5)


@pytest.mark.parametrize("call", [
    lambda init, m: init.xavier_uniform_(m.proj.bias),
    lambda init, m: init.kaiming_normal_(m.mlp.bias),
    lambda init, m: init.kaiming_uniform_(m.mlp.weight, mode="fan_avg"),
    lambda init, m: init.kaiming_normal_(m.mlp.weight, nonlinearity="gelu"),
    lambda init, m: init.orthogonal_(m.mlp.bias),
    lambda init, m: init.eye_(m.stem.weight),
    lambda init, m: init.dirac_(m.skip.weight),
    lambda init, m: init.dirac_(m.grouped_conv.weight, groups=5),
    lambda init, m: init.sparse_(m.stem.weight, 0.5),
    lambda init, m: init.calculate_gain("swish"),
])
def test_same_errors(call):
    model = Net()
    with pytest.raises(ValueError) as theirs:
        call(torch.nn.init, model)
    with pytest.raises(ValueError) as ours:
        call(triton_init, model)
    assert str(ours.value) == str(theirs.value)


def test_bf16_model_initializes_where_torch_fails_on_orthogonal():
    model = Net().to(torch.bfloat16)
    with pytest.raises(RuntimeError):
        init_weights(model, torch.nn.init)
    init_weights(model, triton_init)
    w = model.recurrent.weight.detach().double()
    assert torch.allclose(w @ w.t(), 2 * torch.eye(256, dtype=torch.float64), atol=2 * 3e-2)
    assert all(not p.isnan().any() for p in model.parameters())


def test_seeded_runs_are_reproducible():
    torch.manual_seed(7)
    a = Net()
    init_weights(a, triton_init)
    torch.manual_seed(7)
    b = Net()
    init_weights(b, triton_init)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name
