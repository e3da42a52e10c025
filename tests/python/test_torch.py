"""PyTorch nn.Modules traced with torch.fx, compared with forward()."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close, export_and_load, load

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional


class ResidualNet(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.inp = nn.Linear(d_in, 64)
        self.ln = nn.LayerNorm(64)
        self.hidden = nn.Linear(64, 64)
        self.bn = nn.BatchNorm1d(64)
        self.drop = nn.Dropout(0.2)
        self.out = nn.Linear(128, d_out)

    def forward(self, x):
        h = F.relu(self.ln(self.inp(x)))
        h2 = F.gelu(self.bn(self.hidden(h))) + h  # residual add
        h3 = torch.cat([self.drop(h2), F.silu(h)], dim=1)
        return self.out(h3)


def _train(model, X, y, epochs=30):
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y)
    model.train()
    for _ in range(epochs):
        opt.zero_grad()
        loss = F.cross_entropy(model(xt), yt)
        loss.backward()
        opt.step()
    model.eval()
    return model


def _standardize(X):
    return ((X - X.mean(0)) / (X.std(0) + 1e-9)).astype(np.float32)


MODELS = {
    "mlp_relu_softmax": lambda d, k: nn.Sequential(
        nn.Linear(d, 32), nn.ReLU(), nn.Linear(32, k), nn.Softmax(dim=1)),
    "leaky_tanh_sigmoid_logsoftmax": lambda d, k: nn.Sequential(
        nn.Linear(d, 32), nn.LeakyReLU(0.1), nn.Linear(32, 16), nn.Tanh(), nn.Linear(16, 16),
        nn.Sigmoid(), nn.Flatten(), nn.Linear(16, k), nn.LogSoftmax(dim=-1)),
    "gelu_tanh_silu_batchnorm": lambda d, k: nn.Sequential(
        nn.Linear(d, 32), nn.BatchNorm1d(32), nn.GELU(approximate="tanh"), nn.Linear(32, 32),
        nn.SiLU(), nn.Dropout(0.1), nn.Linear(32, k)),
    "residual": ResidualNet,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", list(MODELS))
def test_torch_parity(name, dtype, tmp_model):
    torch.manual_seed(0)
    X, y = load("digits")
    X = _standardize(X)
    model = _train(MODELS[name](X.shape[1], 10), X, y)
    res, rt = export_and_load(model, tmp_model(), input_shape=(1, X.shape[1]),
                              sample_input=X)
    assert res["framework"] == "pytorch" and res["validation"]["passed"], res["validation"]
    with torch.no_grad():
        ref = model(torch.as_tensor(X)).numpy()
    got = rt.predict(X.astype(dtype))
    assert got.dtype == np.float32 and got.shape == ref.shape
    scale = np.abs(ref).max()
    assert_close(got, ref, rtol=1e-5, atol=1e-6 * max(scale, 1.0), what=name)
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))
    assert model.training is False


@pytest.mark.parametrize("q,bound", [("fp16", 1e-2), ("int8", 5e-2)])
def test_torch_quantized(q, bound, tmp_model):
    torch.manual_seed(0)
    X, y = load("digits")
    X = _standardize(X)
    model = _train(MODELS["mlp_relu_softmax"](X.shape[1], 10), X, y)
    res, rt = export_and_load(model, tmp_model(), input_shape=(1, 64), quantization=q,
                              sample_input=X)
    with torch.no_grad():
        ref = model(torch.as_tensor(X)).numpy()
    err = np.abs(rt.predict(X) - ref).max()
    assert err < bound, err
    agree = (rt.predict(X).argmax(1) == ref.argmax(1)).mean()
    assert agree > 0.98, agree
