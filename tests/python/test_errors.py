"""Errors raise the documented classes with helpful messages."""

from __future__ import annotations

import mle_runtime as mle
import numpy as np
import pytest
from conftest import load
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression
from sklearn.svm import SVC


@pytest.fixture
def lr_model(tmp_path):
    X, y = load("breast_cancer")
    model = LogisticRegression(max_iter=5000).fit(X, y)
    path = str(tmp_path / "lr.mle")
    mle.export_model(model, path)
    return model, path, X


def test_hierarchy():
    for cls in (mle.UnsupportedModelError, mle.CorruptedFileError, mle.VersionMismatchError,
                mle.SecurityError, mle.ValidationError, mle.InputError):
        assert issubclass(cls, mle.MLEError)


def test_unsupported_estimator(tmp_path):
    X, y = load("iris")
    with pytest.raises(mle.UnsupportedModelError, match=r"SVC is not supported.*Supported:.*"
                       r"LogisticRegression"):
        mle.export_model(SVC().fit(X, y), str(tmp_path / "m.mle"))
    with pytest.raises(mle.UnsupportedModelError, match="KMeans"):
        mle.export_model(KMeans(n_clusters=2, n_init=1).fit(X), str(tmp_path / "m.mle"))
    with pytest.raises(mle.UnsupportedModelError, match="not a model of a supported framework"):
        mle.export_model(object(), str(tmp_path / "m.mle"))
    with pytest.raises(mle.UnsupportedModelError, match="not fitted"):
        mle.export_model(LogisticRegression(), str(tmp_path / "m.mle"))


def test_unsupported_layer(tmp_path):
    torch = pytest.importorskip("torch")

    class Conv(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)
            self.rnn = torch.nn.GRU(8, 4)

        def forward(self, x):
            return self.rnn(self.fc(x))[0]

    with pytest.raises(mle.UnsupportedModelError,
                       match=r"layer GRU \(rnn\) is not supported\. Supported layers: Linear"):
        mle.export_model(Conv(), str(tmp_path / "m.mle"), input_shape=(2, 8))

    class Fn(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(8, 8)

        def forward(self, x):
            return torch.exp(self.fc(x))

    with pytest.raises(mle.UnsupportedModelError, match=r"function exp is not supported"):
        mle.export_model(Fn(), str(tmp_path / "m.mle"), input_shape=(2, 8))


def test_unsupported_objective(tmp_path):
    xgb = pytest.importorskip("xgboost")
    X, y = load("diabetes")
    model = xgb.XGBRegressor(n_estimators=3, objective="survival:cox").fit(X, y)
    with pytest.raises(mle.UnsupportedModelError,
                       match=r'unsupported model: objective "survival:cox" \(supported: '):
        mle.export_model(model, str(tmp_path / "m.mle"))


def test_corrupt_file(lr_model, tmp_path):
    _, path, _ = lr_model
    data = bytearray(open(path, "rb").read())
    bad = tmp_path / "bad.mle"
    bad.write_bytes(b"NOPE" + bytes(data[4:]))
    with pytest.raises(mle.CorruptedFileError, match="not an MLE model: bad magic"):
        mle.load_model(str(bad))
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    with pytest.raises(mle.CorruptedFileError, match="checksum mismatch"):
        mle.load_model(str(bad))
    bad.write_bytes(bytes(data[:200]))
    with pytest.raises(mle.CorruptedFileError, match="truncated"):
        mle.load_model(str(bad))
    with pytest.raises(mle.ModelFileError, match="nonexistent"):
        mle.load_model(str(tmp_path / "nonexistent.mle"))


def test_version_mismatch(lr_model, tmp_path):
    _, path, _ = lr_model
    data = bytearray(open(path, "rb").read())
    data[4:6] = (99).to_bytes(2, "little")  # major version
    bad = tmp_path / "future.mle"
    bad.write_bytes(bytes(data))
    with pytest.raises(mle.VersionMismatchError, match="format version 99"):
        mle.load_model(str(bad))


def test_wrong_input_width(lr_model):
    _, path, X = lr_model
    rt = mle.load_model(path)
    with pytest.raises(mle.InputError, match="takes 30 features per row but the input has 29"):
        rt.predict(X[:, :29])
    with pytest.raises(mle.InputError, match="must have 30 values, got 3"):
        rt.predict(np.ones(3))
    with pytest.raises(mle.InputError, match="not numeric"):
        rt.predict(np.array([["a"] * 30]))
    with pytest.raises(mle.InputError, match="input must be 1-D or 2-D"):
        rt.predict(np.ones((2, 3, 5, 0)))


def test_signature(lr_model, tmp_path):
    model, _, X = lr_model
    secret, public = mle.generate_keypair()
    other_secret, other_public = mle.generate_keypair()
    signed = str(tmp_path / "signed.mle")
    unsigned = str(tmp_path / "unsigned.mle")
    mle.export_model(model, signed, signing_key=secret)
    mle.export_model(model, unsigned)
    rt = mle.load_model(signed, public_key=public)
    np.testing.assert_array_equal(rt.predict(X), model.predict(X))
    with pytest.raises(mle.SecurityError, match="not signed"):
        mle.load_model(unsigned, public_key=public)
    with pytest.raises(mle.SecurityError, match="invalid signature"):
        mle.load_model(signed, public_key=other_public)


def test_validation_error(tmp_path):
    """A model whose reference disagrees with the export raises ValidationError with the
    figures; validate='warn' turns it into a warning."""
    X, y = load("breast_cancer")
    model = LogisticRegression(max_iter=5000).fit(X, y)

    class Drifting(LogisticRegression):
        def predict_proba(self, X):
            return super().predict_proba(X) * 0.9

    drift = Drifting(max_iter=5000).fit(X, y)
    drift.coef_ = model.coef_
    with pytest.raises(mle.ValidationError, match="differs from sklearn beyond tolerance") as e:
        mle.export_model(drift, str(tmp_path / "d.mle"), sample_input=X)
    assert e.value.errors["max_abs_error"] > 0.01
    with pytest.warns(UserWarning, match="beyond tolerance"):
        r = mle.export_model(drift, str(tmp_path / "d.mle"), sample_input=X, validate="warn")
    assert r["success"] and not r["validation"]["passed"]
