"""Regenerates ``manifest.json``: for every ONNX backend node test case of an operator we
claim (``mle-import/ONNX.md``), ``pass`` (matches within the case's own rtol/atol) or
``refused`` (a typed error, with its message), and the operators we do not claim.

    python tests/python/onnx_node/make_manifest.py   # onnx 1.23.2
"""

import json
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings("ignore")

import onnx  # noqa: E402
from harness import matches, run  # noqa: E402
from onnx.backend.test.case.node import collect_testcases  # noqa: E402

CLAIMED = sorted(set("""
Gemm MatMul Add Sub Mul Div Relu LeakyRelu Sigmoid Tanh Softmax LogSoftmax Gelu
LayerNormalization BatchNormalization Clip Concat Flatten Reshape Squeeze Unsqueeze Cast
Identity Constant Exp Neg ArgMax Dropout Shape Gather TreeEnsembleClassifier
TreeEnsembleRegressor LinearClassifier LinearRegressor Scaler Normalizer Imputer Binarizer
ArrayFeatureExtractor FeatureVectorizer ZipMap
""".split()))

cases = {}
all_ops = set()
for c in collect_testcases(None):
    ops = [n.op_type for n in c.model.graph.node]
    if not ops:
        continue
    all_ops.update(ops)
    op = ops[0] if len(set(ops)) == 1 else None
    if op not in CLAIMED:
        continue
    try:
        got, want = run(c)
        status = "pass" if matches(got, want, c.rtol, c.atol) else "mismatch"
        reason = ""
    except Exception as e:  # noqa: BLE001 - the manifest records what each case raises
        status = "refused"
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:240]}"
    cases[c.name] = {"op": op, "expect": status, "rtol": c.rtol, "atol": c.atol,
                     "reason": reason}
doc = {"onnx": onnx.__version__, "claimed": CLAIMED,
       "not_claimed": sorted(all_ops - set(CLAIMED)), "cases": cases}
with open(os.path.join(os.path.dirname(__file__), "manifest.json"), "w") as f:
    json.dump(doc, f, indent=1, sort_keys=True)
n = {s: sum(v["expect"] == s for v in cases.values()) for s in ("pass", "refused", "mismatch")}
print(f"{len(cases)} cases of {len(CLAIMED)} claimed operators: {n}")
