"""The format's contract constants reach Python from mle_format (``_native.contract``), and
``TreeEnsemble`` nodes are built and checked by the native ``TreeEnsembleSpec``."""

from __future__ import annotations

import json

import mle_runtime as mle
import numpy as np
import pytest
from conftest import assert_close, export_and_load, with_nans
from mle_runtime import _native
from mle_runtime import export as export_mod

C = _native.contract


def test_flag_bits_are_the_documented_bits():
    f = C.TREE_FLAGS
    assert [f[k] for k in ("LEAF", "MISSING_LEFT", "CATEGORICAL", "ZERO_IS_MISSING",
                           "NAN_IS_ZERO")] == [1, 2, 4, 8, 16]
    assert f["ALL"] == 0x1F


def test_attribute_names_and_values():
    a = C.TREE_ATTRS
    assert len(a) == 19 and all(k.lower() == v for k, v in a.items())
    assert C.TREE_VALUES[a["COMPARISON"]] == ["lt", "le"]
    assert C.TREE_VALUES[a["CATEGORICAL_MEMBERS"]] == ["left", "right"]
    assert C.TREE_VALUES[a["CATEGORICAL_RULE"]] == ["lightgbm", "xgboost"]


def test_one_default_zstd_level():
    assert export_mod.ZSTD_LEVEL == C.DEFAULT_ZSTD_LEVEL == 9


def _stump(**over):
    f = C.TREE_FLAGS
    kw = dict(n_targets=1, leaf_dim=1, tree_roots=np.array([0], np.uint32),
              feature=np.array([0, 0, 0], np.int32), threshold=np.array([0.5, 0, 0]),
              left=np.array([1, 0, 0], np.uint32), right=np.array([2, 0, 0], np.uint32),
              flags=np.array([f["MISSING_LEFT"], f["LEAF"], f["LEAF"]], np.uint8),
              leaf_values=np.array([0.0, 1.0, 2.0]), comparison="lt", input_precision="f32",
              aggregate="sum", base_scores=[0.0])
    kw.update(over)
    return _native.tree_ensemble("t", "X", "y", **kw)


def test_native_node_names_its_tensors_by_attribute():
    node_json, tensors = _stump()
    node = json.loads(node_json)
    assert node["op"] == "TreeEnsemble" and node["inputs"] == ["X"] and node["outputs"] == ["y"]
    assert set(node["attrs"]) <= set(C.TREE_ATTRS.values())
    refs = {k: v["tensor"] for k, v in node["attrs"].items() if "tensor" in v}
    assert set(refs.values()) == set(tensors)
    assert tensors[refs["flags"]].tolist() == [2, 1, 1]
    assert tensors[refs["flags"]].dtype == np.uint8
    assert node["attrs"]["comparison"] == {"str": "lt"}
    assert "tree_targets" not in node["attrs"] and "cat_bits" not in node["attrs"]


@pytest.mark.parametrize("over, message", [
    (dict(left=np.array([0, 0, 0], np.uint32)), "left[0] = 0"),
    (dict(flags=np.array([0x20, 1, 1], np.uint8)), "flags[0] = 0x20"),
    (dict(threshold=np.array([0.5, 0.0])), "threshold has 2 elements, expected 3"),
    (dict(comparison="LT"), "\"comparison\" is \"LT\""),
    (dict(cat_bits=np.array([1], np.uint32)), "cat_offsets and cat_bits"),
])
def test_native_builder_refuses_an_invalid_ensemble(over, message):
    with pytest.raises(mle.MLEError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _stump(**over)


def test_exported_forest_still_matches_sklearn(tmp_model):
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = with_nans(rng.standard_normal((300, 5)))
    y = (np.nan_to_num(X[:, 1]) > 0).astype(int)
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0).fit(X, y)
    _, rt = export_and_load(model, tmp_model(), sample_input=X)
    assert_close(rt.predict_proba(X), model.predict_proba(X), what="probabilities")
    assert np.array_equal(rt.predict(X), model.predict(X))
