"""The seed's comprehensive_workflow_test: train LR, RF, a PyTorch MLP and an XGBoost
classifier; export all, load, compare, benchmark."""

from __future__ import annotations

import mle_runtime as mle
import numpy as np
import pytest
from conftest import load
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

torch = pytest.importorskip("torch")
xgb = pytest.importorskip("xgboost")


class SimpleClassifier(torch.nn.Module):
    def __init__(self, input_size, hidden_size, num_classes):
        super().__init__()
        self.fc1 = torch.nn.Linear(input_size, hidden_size)
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def _predict(model, x):
    if isinstance(model, torch.nn.Module):
        with torch.no_grad():
            return model(torch.as_tensor(x, dtype=torch.float32)).numpy()
    return model.predict(x)


def assert_outputs_match(original, mine, tolerance):
    original = np.asarray(original)
    mine = np.asarray(mine)
    assert mine.shape == original.shape
    if original.dtype.kind in "iuOUb":
        np.testing.assert_array_equal(mine, original)
    else:
        np.testing.assert_allclose(mine, original, rtol=tolerance, atol=tolerance)


def test_comprehensive_workflow(tmp_path):
    X, y = load("digits")
    X = ((X - X.mean(0)) / (X.std(0) + 1e-9)).astype(np.float32)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)

    torch.manual_seed(0)
    mlp = SimpleClassifier(64, 128, 10)
    opt = torch.optim.Adam(mlp.parameters(), lr=1e-3)
    xt, yt = torch.as_tensor(X_train), torch.as_tensor(y_train)
    for _ in range(50):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(mlp(xt), yt)
        loss.backward()
        opt.step()
    mlp.eval()

    # 1. train multiple model types
    models = {
        "sklearn_lr": LogisticRegression(max_iter=2000).fit(X_train, y_train),
        "sklearn_rf": RandomForestClassifier(n_estimators=50, random_state=42)
        .fit(X_train, y_train),
        "pytorch_mlp": mlp,
        "xgboost_clf": xgb.XGBClassifier(n_estimators=30, max_depth=4, n_jobs=1)
        .fit(X_train, y_train),
    }
    # 2. export all models
    paths = {}
    for name, model in models.items():
        path = str(tmp_path / f"{name}.mle")
        result = mle.export_model(model, path, input_shape=(1, 64), compression=True,
                                  metadata={"version": "1.0", "author": "team"})
        assert result["success"], f"Export failed for {name}"
        assert result["validation"]["passed"], (name, result["validation"])
        paths[name] = path
    # 3. load and validate all models
    for name, path in paths.items():
        runtime = mle.load_model(path)
        assert runtime.metadata["user"]["author"] == "team"
        original = _predict(models[name], X_test)
        mine = runtime.run([X_test])[0]
        assert_outputs_match(original, mine, tolerance=1e-3)
        v = mle.validate_export(models[name], path, [X_test])
        assert v["passed"] and v["max_rel_error"] < 1e-3, (name, v)
    # 4. benchmarking
    results = {}
    for name, path in paths.items():
        runtime = mle.load_model(path)
        results[name] = runtime.benchmark(X_test, num_runs=20)
        b = results[name]
        assert b["num_runs"] == 20 and b["batch_size"] == len(X_test)
        assert 0 < b["min_ms"] <= b["p50_ms"] <= b["p99_ms"] <= b["max_ms"]
        assert b["throughput_rows_per_s"] > 0
        assert runtime.peak_memory_usage() > 0
    assert set(results) == set(models)
