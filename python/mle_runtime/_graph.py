"""A small builder for the graph IR (see docs/OPS.md): nodes, exact tensors, quantizable
weights and the metadata section, handed to the Rust writer in one call."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field

import numpy as np

from . import _native
from .errors import MLEError

EXPORTER_VERSION = "0.1.0"


@dataclass(frozen=True)
class T:
    """An attribute naming a tensor of the weights section."""

    name: str


def _attr(v):
    if isinstance(v, T):
        return {"tensor": v.name}
    if isinstance(v, bool):
        return {"int": int(v)}
    if isinstance(v, (int, np.integer)):
        return {"int": int(v)}
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            raise MLEError(f"attribute value {v!r} is not finite")
        return {"float": float(v)}
    if isinstance(v, str):
        return {"str": v}
    if isinstance(v, (list, tuple)):
        if all(isinstance(x, str) for x in v):
            return {"strs": list(v)}
        if all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v):
            return {"ints": [int(x) for x in v]}
        return {"floats": [float(x) for x in v]}
    raise MLEError(f"cannot encode attribute value {v!r}")


#: The kinds of input features (FORMAT.md, "Input features").
FEATURE_KINDS = ("float", "integer", "boolean", "string", "category")

#: What a ``Lookup`` does with a value outside its vocabulary (docs/OPS.md): ``missing``
#: (NaN, the tree's missing side), ``error`` (the run fails naming the column) or ``code``
#: (the code ``n``, one past the last category: an encoder tells it from missing).
UNKNOWN_RULES = ("missing", "error", "code")


@dataclass
class Feature:
    """One typed input feature. ``categories`` (category features only) is the vocabulary in
    code order: a list of str (string vocabulary) or an int64 array (integer vocabulary).
    ``unknown`` is what the source framework does with a value outside it; ``missing`` says
    whether it takes a missing value (scikit-learn's encoders under ``handle_unknown="error"``
    refuse one they did not see in fit)."""

    name: str
    kind: str = "float"
    categories: object = None
    unknown: str = "missing"
    missing: bool = True

    @property
    def is_string_vocabulary(self) -> bool:
        return isinstance(self.categories, list)


def vocabulary(categories) -> object:
    """A framework's categories as a vocabulary: a list of str, or an int64 array when every
    category is an integer (ints, or floats with integral values). Anything else (floats
    with a fraction, booleans, mixed types) is refused."""
    vals = list(categories)
    if all(isinstance(c, str) for c in vals):
        return [str(c) for c in vals]
    arr = np.asarray(vals)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)) \
            and np.all(np.abs(arr) < 2.0 ** 53):
        return arr.astype(np.int64)
    raise MLEError(
        f"categories {vals[:5]!r}... are neither all strings nor all integers: they cannot be "
        f"stored as a vocabulary")


@dataclass
class Graph:
    """Graph under construction. Values are tracked with their dtype (``f32``, ``f64``,
    ``i64``) and width (0 for ``[N]``, k for ``[N, k]``)."""

    n_features: int
    input_dtype: str = "f64"
    nodes: list = field(default_factory=list)
    tensors: dict = field(default_factory=dict)
    weights: dict = field(default_factory=dict)
    outputs: list = field(default_factory=list)
    values: dict = field(default_factory=dict)
    features: list | None = None
    _counter: int = 0

    def __post_init__(self):
        self.values["X"] = (self.input_dtype, self.n_features)

    # -- typed input features ------------------------------------------------------------
    def set_features(self, names) -> None:
        """Declares the input features by name, every one a ``float`` until
        :meth:`declare` says otherwise."""
        names = [str(n) for n in names]
        if len(names) != self.n_features:
            raise MLEError(f"graph: {len(names)} feature names for {self.n_features} features")
        self.features = [Feature(n) for n in names]

    def declare(self, index: int, kind: str, categories=None, unknown: str = "missing",
                missing: bool = True) -> None:
        """Declares feature ``index`` of kind ``kind``; a ``category`` has ``categories`` (its
        vocabulary, see :func:`vocabulary`) and an ``unknown`` rule."""
        if self.features is None:
            raise MLEError("graph: set_features before declare")
        if kind not in FEATURE_KINDS:
            raise MLEError(f"graph: unknown feature kind {kind!r} ({', '.join(FEATURE_KINDS)})")
        if unknown not in UNKNOWN_RULES:
            raise MLEError(f"graph: unknown rule {unknown!r} ({', '.join(UNKNOWN_RULES)})")
        if (kind == "category") != (categories is not None):
            raise MLEError(f"graph: feature {self.features[index].name!r}: categories go "
                           f"with kind 'category' only")
        cats = vocabulary(categories) if categories is not None else None
        self.features[index] = Feature(self.features[index].name, kind, cats, unknown, missing)

    @property
    def typed(self) -> bool:
        """True when some feature is not a float (the file then lists its features)."""
        return self.features is not None and any(f.kind != "float" for f in self.features)

    def lookups(self, v: str = "X") -> str:
        """Emits the ``Lookup`` chain of the category features (one node per feature, each
        reading the previous one's output, the first reading ``v``) and returns the value
        the model then reads: ``v``'s columns with every category replaced by its code."""
        for i, f in enumerate(self.features or []):
            if f.kind != "category":
                continue
            vocab = f"vocab.{i}"
            if f.is_string_vocabulary:
                attrs = {"bytes": T(f"{vocab}.bytes"), "offsets": T(f"{vocab}.offsets")}
            else:
                attrs = {"values": T(vocab)}
            if not f.missing:
                attrs["missing"] = "error"
            v = self.node("Lookup", v, "f64", self.width(v), feature=i, unknown=f.unknown,
                          **attrs)
        return v

    def features_spec(self) -> list | None:
        """The features for the native builder (``_native.build_model(features=...)``):
        name, kind and, for categories, the vocabulary's name and categories."""
        if not self.typed:
            return None
        out = []
        for i, f in enumerate(self.features):
            d = {"name": f.name, "kind": f.kind}
            if f.kind == "category":
                d["vocabulary"] = f"vocab.{i}"
                d["categories"] = f.categories
            out.append(d)
        return out

    def fresh(self, prefix: str) -> str:
        self._counter += 1
        return f"{prefix}_{self._counter}"

    def tensor(self, prefix: str, array) -> T:
        """Adds a tensor stored exactly (its dtype is kept)."""
        name = self.fresh(prefix)
        self.tensors[name] = np.ascontiguousarray(array)
        return T(name)

    def weight(self, prefix: str, array) -> T:
        """Adds a float weight stored as f32 (quantizable)."""
        name = self.fresh(prefix)
        self.weights[name] = np.ascontiguousarray(array, dtype=np.float32)
        return T(name)

    def node(self, op: str, inputs, dtype: str, width: int, out: str | None = None, **attrs):
        """Appends a node with one output and returns the output's name."""
        if isinstance(inputs, str):
            inputs = [inputs]
        for i in inputs:
            if i not in self.values:
                raise MLEError(f"graph: node {op} reads unknown value {i!r}")
        name = out or self.fresh(op.lower())
        self.nodes.append(
            {
                "name": self.fresh(op),
                "op": op,
                "inputs": list(inputs),
                "outputs": [name],
                "attrs": {k: _attr(v) for k, v in attrs.items() if v is not None},
            }
        )
        self.values[name] = (dtype, width)
        return name

    def tree_ensemble(self, v: str, width: int, **spec) -> str:
        """Appends a ``TreeEnsemble`` node reading ``v`` and returns its f64 output (width
        ``width``). The node is built and checked by the native ``TreeEnsembleSpec``:
        ``spec`` holds its arrays and values, named as the attributes of docs/OPS.md."""
        if v not in self.values:
            raise MLEError(f"graph: node TreeEnsemble reads unknown value {v!r}")
        out = self.fresh("treeensemble")
        node_json, tensors = _native.tree_ensemble(self.fresh("TreeEnsemble"), v, out, **spec)
        self.tensors.update(tensors)
        self.nodes.append(json.loads(node_json))
        self.values[out] = ("f64", width)
        return out

    def dtype(self, v: str) -> str:
        return self.values[v][0]

    def width(self, v: str) -> int:
        return self.values[v][1]

    def cast(self, v: str, to: str) -> str:
        """Casts ``v`` to ``to`` when needed."""
        if self.dtype(v) == to:
            return v
        return self.node("Cast", v, to, self.width(v), to=to)

    def output(self, v: str, name: str) -> None:
        """Declares ``v`` a graph output named ``name`` (renaming via Identity if needed)."""
        if v != name:
            if v == "X":
                v = self.node("Identity", v, self.dtype(v), self.width(v), out=name)
            else:
                # rename the producing node's output
                for n in self.nodes:
                    n["outputs"] = [name if o == v else o for o in n["outputs"]]
                    n["inputs"] = [name if i == v else i for i in n["inputs"]]
                self.values[name] = self.values.pop(v)
                v = name
        dtype, width = self.values[v]
        shape = [-1] if width == 0 else [-1, width]
        self.outputs.append({"name": name, "dtype": dtype, "shape": shape})

    def graph_json(self) -> str:
        return json.dumps(
            {
                "inputs": [
                    {"name": "X", "dtype": self.input_dtype, "shape": [-1, self.n_features]}
                ],
                "outputs": self.outputs,
                "nodes": self.nodes,
            }
        )


def class_labels_json(classes) -> list:
    """Class labels as JSON values: ints stay ints, anything else becomes a string."""
    arr = np.asarray(classes)
    if arr.dtype.kind in "iu":
        return [int(c) for c in arr]
    if arr.dtype.kind == "b":
        return [int(c) for c in arr]
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        return [int(c) for c in arr]
    return [str(c) for c in arr]


def label_dtype(classes) -> str:
    """The numpy dtype string class labels are returned in."""
    arr = np.asarray(classes)
    if arr.dtype.kind in "iufb":
        return arr.dtype.str
    return "str"


def make_metadata(
    *,
    framework: str,
    framework_version: str,
    model_type: str,
    task: str,
    feature_names: list[str],
    input_dtype: str,
    outputs: list[dict],
    class_labels=None,
    user: dict | None = None,
) -> dict:
    meta = {
        "framework": framework,
        "framework_version": framework_version,
        "model_type": model_type,
        "task": task,
        "input": {
            "feature_names": [str(f) for f in feature_names],
            "dtype": input_dtype,
            "shape": [-1, len(feature_names)],
        },
        "output": {
            "names": [o["name"] for o in outputs],
            "dtypes": [o["dtype"] for o in outputs],
        },
        "export_time": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exporter_version": EXPORTER_VERSION,
        "user": dict(user or {}),
    }
    if class_labels is not None:
        meta["output"]["class_labels"] = class_labels_json(class_labels)
        meta["user"].setdefault("mle.label_dtype", label_dtype(class_labels))
    return meta
