"""ONNX backend node tests for every operator we claim, as tract's harness runs them: a
manifest (``onnx_node/manifest.json``, made by ``onnx_node/make_manifest.py``) names each case
of a claimed operator with what it must do, and each case is one test:

- ``pass``: the runtime's outputs match the case's (the ``onnx`` package's reference
  implementation) within the case's own ``rtol`` / ``atol``;
- ``refused``: the importer raises a typed :class:`mle_runtime.MLEError` (inputs of integer
  or string types, rank-1 inputs, broadcasts over the batch, attributes without an exact
  translation ...), never a wrong number or a crash.

The cases are generated at test time from the installed ``onnx`` package
(``onnx.backend.test.case.node``); operators we do not claim are listed in the manifest's
``not_claimed``. A case of a claimed operator missing from the manifest fails."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")

HERE = Path(__file__).parent / "onnx_node"
MANIFEST = json.loads((HERE / "manifest.json").read_text())
sys.path.insert(0, str(HERE))

import mle_runtime as mle  # noqa: E402
from harness import matches, run  # noqa: E402


@pytest.fixture(scope="module")
def cases():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {c.name: c for c in collect_testcases(None)}


def test_manifest_covers_every_case_of_a_claimed_op(cases):
    assert onnx.__version__ == MANIFEST["onnx"], "regenerate onnx_node/manifest.json"
    claimed = set(MANIFEST["claimed"])
    mine = {n for n, c in cases.items()
            if c.model.graph.node and {x.op_type for x in c.model.graph.node} <= claimed
            and len({x.op_type for x in c.model.graph.node}) == 1}
    assert mine == set(MANIFEST["cases"]), sorted(mine ^ set(MANIFEST["cases"]))
    assert not claimed & set(MANIFEST["not_claimed"])


@pytest.mark.parametrize("name", sorted(MANIFEST["cases"]))
def test_node_case(name, cases):
    entry = MANIFEST["cases"][name]
    case = cases[name]
    if entry["expect"] == "refused":
        with pytest.raises((mle.MLEError, TypeError)):
            run(case)
        return
    got, want = run(case)
    assert matches(got, want, entry["rtol"], entry["atol"]), name
