"""scikit-learn pipelines: ``ColumnTransformer``, ``FeatureUnion`` and the encoders.

The graph reads the pipeline's raw input columns (by name: ``feature_names_in_``). Strings
never leave the input stage: every column an encoder reads as categories is a ``category``
feature whose ``Lookup`` (``unknown = "code"``, or ``"error"`` under
``handle_unknown="error"``) gives the encoder's category positions, an unseen value the code
``n`` and a missing value NaN; the encoders are ``OneHot`` / ``CategoryMap`` tables over those
codes (docs/OPS.md, "Pipeline ops").

The tables are read from the fitted encoder itself: each category, an unseen value and a
missing value are passed through the encoder's own ``transform``, so ``drop``, infrequent
categories, ``handle_unknown``, ``unknown_value`` / ``encoded_missing_value`` and
``TargetEncoder``'s ``encodings_`` are exactly scikit-learn's. A string ``SimpleImputer``
before an encoder is folded into the encoder's missing entry (the encoder sees the fill value).

A branch of a ``ColumnTransformer`` is a list of parts: :class:`_Raw` columns of the input
(not yet read: an encoder looks them up, anything else reads them as numbers) and
:class:`_Num` values of the graph (f64).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from .._graph import Graph, vocabulary
from ..errors import MLEError, UnsupportedModelError
from ._sample import UNSEEN

#: The coded input: the graph input after its Lookup chain (the chain is put in front last).
XC = "XC"

PIPELINE_STEPS = [
    "ColumnTransformer",
    "FeatureUnion",
    "OneHotEncoder",
    "OrdinalEncoder",
    "TargetEncoder",
    "MissingIndicator",
    "KBinsDiscretizer",
    "PolynomialFeatures",
    "FunctionTransformer",
]

_FUNCTIONS = {"log1p": "Log1p", "expm1": "Expm1"}


def _refuse(step, why: str) -> UnsupportedModelError:
    return UnsupportedModelError(f"scikit-learn {type(step).__name__}: {why}")


def _is_missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


@dataclass
class _Raw:
    """Input columns (graph input positions) not read yet, each with a pending imputation
    (``None`` or ``(fill, missing_marker)``)."""

    cols: list
    fills: list = field(default_factory=list)

    def __post_init__(self):
        if not self.fills:
            self.fills = [None] * len(self.cols)

    @property
    def width(self) -> int:
        return len(self.cols)


@dataclass
class _Num:
    v: str
    width: int


class PipelineBuilder:
    """Emits the transformers of a pipeline over the coded input ``XC``."""

    def __init__(self, g: Graph, quantized: bool = False):
        self.g = g
        self.quantized = quantized
        g.values[XC] = ("f64", g.n_features)
        #: feature (graph input position) → ("float" | "category", vocabulary, unknown, step)
        self.kinds: dict[int, tuple] = {}

    # -- features --------------------------------------------------------------------------
    def _use(self, col: int, kind: str, step, cats=None, unknown: str = "code",
             missing: bool = True) -> None:
        name = self.g.features[col].name
        prev = self.kinds.get(col)
        if prev is None:
            self.kinds[col] = (kind, cats, unknown, step, missing)
            return
        same = prev[0] == kind and (kind == "float" or (
            _same_vocab(prev[1], cats) and prev[2] == unknown))
        if not same:
            raise _refuse(step, f"column {name!r} is also read by {type(prev[3]).__name__} "
                                f"as {prev[0]}; one input column must be read one way")

    def finish(self) -> str:
        """Declares the features and puts the Lookup chain in front; returns ``XC``."""
        g = self.g
        for col, (kind, cats, unknown, step, missing) in sorted(self.kinds.items()):
            if kind == "category":
                try:
                    g.declare(col, "category", cats, unknown=unknown, missing=missing)
                except MLEError as e:
                    raise _refuse(step, f"column {g.features[col].name!r}: {e}") from None
        body = g.nodes
        g.nodes = []
        tail = g.lookups("X")
        if tail == "X":
            g.node("Identity", "X", "f64", g.n_features, out=XC)
        else:
            g.nodes[-1]["outputs"] = [XC]
            g.values.pop(tail, None)
        g.nodes.extend(body)
        return XC

    # -- parts -----------------------------------------------------------------------------
    def materialize(self, parts, step) -> str:
        """The parts as one f64 value (raw columns read as numbers, pending imputations
        applied)."""
        vals = []
        for p in parts:
            if isinstance(p, _Num):
                vals.append(p.v)
                continue
            for c in p.cols:
                self._use(c, "float", step)
            v = self.g.node("Gather", XC, "f64", p.width, columns=[int(c) for c in p.cols])
            if any(f is not None for f in p.fills):
                fills = np.array([np.nan if f is None else float(f[0]) for f in p.fills])
                markers = {f[1] for f in p.fills if f is not None}
                attrs = {}
                if len(markers) > 1:
                    raise _refuse(step, "imputers with different missing_values")
                (m,) = markers
                if m is not None:
                    attrs["missing"] = float(m)
                v = self.g.node("Imputer", v, "f64", p.width,
                                values=self.g.tensor("impute", fills), **attrs)
            vals.append(v)
        if not vals:
            raise _refuse(step, "no columns reach it")
        if len(vals) == 1:
            return vals[0]
        return self.g.node("Concat", vals, "f64", sum(self.g.width(v) for v in vals), axis=1)

    @staticmethod
    def width(parts) -> int:
        return sum(p.width for p in parts)

    def select(self, parts, idx) -> list:
        """Columns ``idx`` (positions in the concatenated parts) as parts."""
        flat = []
        for pi, p in enumerate(parts):
            for k in range(p.width):
                flat.append((pi, k))
        out = []
        for i in idx:
            pi, k = flat[int(i)]
            p = parts[pi]
            if isinstance(p, _Raw):
                if out and isinstance(out[-1], _Raw):
                    out[-1].cols.append(p.cols[k])
                    out[-1].fills.append(p.fills[k])
                else:
                    out.append(_Raw([p.cols[k]], [p.fills[k]]))
            else:
                v = self.g.node("Gather", p.v, "f64", 1, columns=[k])
                out.append(_Num(v, 1))
        return out

    # -- steps -----------------------------------------------------------------------------
    def transform(self, est, parts) -> list:
        from .sklearn import _TRANSFORMERS, _emit_transformer, _known_name

        if est is None or (isinstance(est, str) and est == "passthrough"):
            return parts
        name = _known_name(est)
        if name == "Pipeline":
            for _, step in est.steps:
                parts = self.transform(step, parts)
            return parts
        if name == "ColumnTransformer":
            return self._column_transformer(est, parts)
        if name == "FeatureUnion":
            return self._feature_union(est, parts)
        if name in ("OneHotEncoder", "OrdinalEncoder", "TargetEncoder"):
            return self._encoder(est, parts)
        if name == "SimpleImputer":
            return self._imputer(est, parts)
        if name == "MissingIndicator":
            if (est.features == "missing-only" and est.error_on_new
                    and len(est.features_) < est.n_features_in_):
                # scikit-learn raises when a column without missing values in fit has one
                # at transform; the graph has no op that fails on a value of a float
                # column, so refuse rather than give a number where it raises.
                quiet = sorted(set(range(est.n_features_in_)) - {int(f) for f in est.features_})
                raise _refuse(est, f"error_on_new=True with columns {quiet[:5]} that had no "
                                   f"missing value in fit is not supported (scikit-learn "
                                   f"raises on a missing value there); use "
                                   f"error_on_new=False or features='all'")
            return [self._indicator(est, parts, est.features_, est.missing_values)]
        if name == "KBinsDiscretizer":
            return self._kbins(est, parts)
        if name == "PolynomialFeatures":
            return self._poly(est, parts)
        if name == "FunctionTransformer":
            return self._function(est, parts)
        if name in _TRANSFORMERS:
            v = self.materialize(parts, est)
            out = _emit_transformer(est, self.g, v)
            return [_Num(out, self.g.width(out))]
        raise _refuse(est, "is not supported inside a pipeline. Supported: "
                           + ", ".join(sorted(set(PIPELINE_STEPS) | _TRANSFORMERS)))

    def _column_transformer(self, ct, parts) -> list:
        if self.width(parts) != ct.n_features_in_:
            raise _refuse(ct, f"it takes {ct.n_features_in_} columns, given "
                              f"{self.width(parts)}")
        outs = []
        for name, trans, _ in ct.transformers_:
            idx = ct._transformer_to_input_indices.get(name, [])
            sl = ct.output_indices_.get(name)
            if isinstance(trans, str) and trans == "drop":
                continue
            if len(idx) == 0 or sl is None or sl.stop == sl.start:
                continue
            res = self.transform(trans, self.select(parts, idx))
            if self.width(res) != sl.stop - sl.start:
                raise _refuse(ct, f"transformer {name!r} gives {self.width(res)} columns, "
                                  f"scikit-learn {sl.stop - sl.start}")
            outs.append((sl.start, res))
        outs.sort(key=lambda t: t[0])
        return [p for _, res in outs for p in res]

    def _feature_union(self, fu, parts) -> list:
        weights = fu.transformer_weights or {}
        out = []
        for name, trans in fu.transformer_list:
            if isinstance(trans, str) and trans == "drop":
                continue
            res = self.transform(trans, parts)
            w = weights.get(name)
            if w is not None and float(w) != 1.0:
                v = self.materialize(res, fu)
                n = self.g.width(v)
                v = self.g.node("Scaler", v, "f64", n,
                                offset=self.g.tensor("offset", np.zeros(n)),
                                scale=self.g.tensor("scale", np.full(n, float(w))))
                res = [_Num(v, n)]
            out.extend(res)
        return out

    def _imputer(self, imp, parts) -> list:
        from .sklearn import _emit_transformer

        stats = np.asarray(imp.statistics_, dtype=object)
        if stats.shape[0] != self.width(parts):
            raise _refuse(imp, "columns with no observed value are dropped by the imputer "
                               "(keep_empty_features=False)")
        mv = imp.missing_values
        if isinstance(mv, str):
            raise _refuse(imp, f"missing_values={mv!r}: only NaN/None or a number is a "
                               f"missing value here")
        marker = None if _is_missing(mv) else float(mv)
        if all(isinstance(p, _Raw) and all(f is None for f in p.fills) for p in parts):
            cols = [c for p in parts for c in p.cols]
            for s in stats:
                if _is_missing(s):
                    raise _refuse(imp, "a column has no statistic (all values missing in fit)")
            out = [_Raw(list(cols), [(s, marker) for s in stats])]
        else:
            if stats.dtype == object and any(isinstance(s, str) for s in stats):
                raise _refuse(imp, "string imputation must read the input's columns")
            was = imp.add_indicator
            v = self.materialize(parts, imp)
            try:
                imp.add_indicator = False
                res = _emit_transformer(imp, self.g, v)
            finally:
                imp.add_indicator = was
            out = [_Num(res, self.g.width(res))]
        if imp.add_indicator:
            ind = imp.indicator_
            out.append(self._indicator(ind, parts, ind.features_, ind.missing_values))
        return out

    def _indicator(self, est, parts, features, mv) -> _Num:
        if isinstance(mv, str):
            raise _refuse(est, f"missing_values={mv!r} is not numeric")
        attrs = {} if _is_missing(mv) else {"missing": float(mv)}
        sel = self.select(parts, list(features))
        cols, vals = [], []
        for p in sel:
            if isinstance(p, _Raw):
                cols.extend(int(c) for c in p.cols)
            else:
                vals.append(p)
        if cols and not vals:
            v = self.g.node("MissingIndicator", XC, "f64", len(cols), columns=cols, **attrs)
            return _Num(v, len(cols))
        x = self.materialize(sel, est)
        w = self.g.width(x)
        v = self.g.node("MissingIndicator", x, "f64", w, columns=list(range(w)), **attrs)
        return _Num(v, w)

    def _kbins(self, kb, parts) -> list:
        x = self.materialize(parts, kb)
        f = self.g.width(x)
        edges = [np.asarray(e, dtype=np.float64)[1:-1] for e in kb.bin_edges_]
        offsets = np.cumsum([0] + [len(e) for e in edges]).astype(np.uint32)
        flat = np.concatenate(edges) if edges else np.zeros(0)
        b = self.g.node("Bucketize", x, "f64", f, edges=self.g.tensor("edges", flat),
                        edge_offsets=self.g.tensor("edge_offsets", offsets))
        if kb.encode == "ordinal":
            return [_Num(b, f)]
        outs = []
        for j, nb in enumerate(np.asarray(kb.n_bins_, dtype=np.int64)):
            slots = np.arange(nb, dtype=np.int32)
            outs.append(self.g.node("OneHot", b, "f64", int(nb), feature=j, n_columns=int(nb),
                                    slots=self.g.tensor("slots", slots)))
        v = outs[0] if len(outs) == 1 else self.g.node(
            "Concat", outs, "f64", int(np.sum(kb.n_bins_)), axis=1)
        return [_Num(v, self.g.width(v))]

    def _poly(self, pf, parts) -> list:
        x = self.materialize(parts, pf)
        powers = np.asarray(pf.powers_, dtype=np.int64)
        terms, offsets = [], [0]
        for row in powers:
            cols = [j for j, p in enumerate(row) for _ in range(int(p))]
            # scikit-learn multiplies a term's columns from the highest down.
            terms.extend(reversed(cols))
            offsets.append(len(terms))
        k = powers.shape[0]
        v = self.g.node("Polynomial", x, "f64", k,
                        terms=self.g.tensor("terms", np.asarray(terms, dtype=np.uint32)),
                        term_offsets=self.g.tensor("term_offsets",
                                                   np.asarray(offsets, dtype=np.uint32)))
        return [_Num(v, k)]

    def _function(self, ft, parts) -> list:
        fn = ft.func
        if ft.kw_args:
            raise _refuse(ft, "kw_args are not supported")
        if fn is None:
            return parts
        op = _FUNCTIONS.get(getattr(fn, "__name__", "")) if isinstance(fn, np.ufunc) else None
        if op is None:
            raise _refuse(ft, f"func={getattr(fn, '__name__', fn)!r} is not supported "
                              f"(only numpy.log1p, numpy.expm1 or None)")
        x = self.materialize(parts, ft)
        v = self.g.node(op, x, "f64", self.g.width(x))
        return [_Num(v, self.g.width(v))]

    # -- encoders --------------------------------------------------------------------------
    def _encoder(self, enc, parts) -> list:
        from .sklearn import _known_name

        name = _known_name(enc)
        n = len(enc.categories_)
        if self.width(parts) != n:
            raise _refuse(enc, f"it takes {n} columns, given {self.width(parts)}")
        widths = _block_widths(enc, name)
        flat = []
        for p in parts:
            for k in range(p.width):
                flat.append((p, k))
        unknown_rule = "error" if getattr(enc, "handle_unknown", None) == "error" else "code"
        outs = []
        for i in range(n):
            p, k = flat[i]
            cats = list(enc.categories_[i])
            known = [c for c in cats if not _is_missing(c)]
            probes = _probes(enc, widths, i, known, cats, p, k, unknown_rule)
            table = probes["table"]
            if isinstance(p, _Raw):
                col = int(p.cols[k])
                try:
                    vocab = vocabulary(known)
                except MLEError as e:
                    raise _refuse(enc, f"feature {i}: {e}") from None
                self._use(col, "category", enc, vocab, unknown_rule, probes["missing_ok"])
                src, feature = XC, col
            else:
                if not (len(known) == 0 or np.array_equal(
                        np.asarray(known, dtype=np.float64), np.arange(len(known)))):
                    raise _refuse(enc, f"feature {i} follows another transformer: its "
                                       f"categories must be 0..n-1 (codes), found "
                                       f"{known[:5]!r}")
                src, feature = p.v, k
            w = widths[i]
            if w == 0:
                continue
            if name == "OneHotEncoder":
                def slot(row):
                    hit = np.flatnonzero(row > 0.5)
                    return int(hit[0]) if hit.size else -1
                slots = np.array([slot(r) for r in table], dtype=np.int32)
                v = self.g.node("OneHot", src, "f64", w, feature=feature, n_columns=w,
                                slots=self.g.tensor("slots", slots),
                                missing=slot(probes["missing"]),
                                unknown=slot(probes["unknown"]))
            else:
                tbl = np.asarray(table, dtype=np.float64).reshape(len(known), w)
                v = self.g.node("CategoryMap", src, "f64", w, feature=feature,
                                table=self.g.tensor("table", tbl),
                                missing=self.g.tensor("cmiss", probes["missing"]),
                                unknown=self.g.tensor("cunk", probes["unknown"]))
            outs.append(_Num(v, w))
        return outs


def _same_vocab(a, b) -> bool:
    if isinstance(a, list) or isinstance(b, list):
        return a == b
    return np.array_equal(np.asarray(a), np.asarray(b))


def _block_widths(enc, name) -> list:
    n = len(enc.categories_)
    if name == "OneHotEncoder":
        return [int(w) for w in enc._n_features_outs]
    if name == "TargetEncoder":
        k = len(enc.classes_) if enc.target_type_ == "multiclass" else 1
        return [k] * n
    return [1] * n


def _probes(enc, widths, i, known, cats, part, k, unknown_rule) -> dict:
    """Feature ``i``'s block of ``enc.transform`` for each known category, an unseen value
    and a missing value (the fill value when an imputer came first)."""
    import pandas as pd

    n = len(enc.categories_)
    start = int(np.sum(widths[:i]))
    w = widths[i]
    strings = any(isinstance(c, str) for c in known)
    missing_value = next((c for c in cats if _is_missing(c)), np.nan)
    fill = part.fills[k] if isinstance(part, _Raw) else None
    if fill is not None:
        missing_value = fill[0]
    unseen = UNSEEN if strings else (float(np.max(known)) + 1.5 if known else 0.5)
    rows = list(known) + [missing_value]
    has_unknown = unknown_rule != "error"
    if has_unknown:
        rows.append(unseen)
    missing_ok = has_unknown or not _is_missing(missing_value) or \
        any(_is_missing(c) for c in cats)
    if not missing_ok:
        rows[len(known)] = known[0] if known else unseen  # placeholder, replaced below
    base = [c[0] if len(c) else np.nan for c in enc.categories_]
    cols = {}
    names = getattr(enc, "feature_names_in_", None)
    for j in range(n):
        vals = rows if j == i else [base[j]] * len(rows)
        if any(isinstance(v, str) for v in vals) or any(
                isinstance(c, str) for c in list(enc.categories_[j])):
            arr = np.array(vals, dtype=object)
        else:
            arr = np.array([np.nan if _is_missing(v) else v for v in vals], dtype=np.float64)
        cols[names[j] if names is not None else j] = arr
    frame = pd.DataFrame(cols) if names is not None else np.column_stack(
        [cols[j] for j in range(n)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = enc.transform(frame)
    if hasattr(out, "toarray"):
        out = out.toarray()
    out = np.asarray(out, dtype=np.float64)[:, start:start + w]
    nk = len(known)
    res = {"table": out[:nk], "missing": out[nk].copy(),
           "unknown": out[nk + 1].copy() if has_unknown else np.full(w, np.nan),
           "missing_ok": missing_ok}
    if not missing_ok:
        # handle_unknown="error" and no missing value in fit: scikit-learn raises on a
        # missing value. On a raw column the Lookup (missing = "error") raises too; after
        # another transformer the block is NaN (no category, never a known one's value).
        res["missing"] = np.full(w, np.nan)
    return res


def used_columns(model, n_features) -> list:
    """The input columns a DataFrame-fitted pipeline reads: all, unless its first step is
    a ColumnTransformer (then those of its transformers that are not dropped)."""
    from .sklearn import _known_name

    first = model
    while _known_name(first) == "Pipeline":
        steps = [s for _, s in first.steps if not (s is None or s == "passthrough")]
        if not steps:
            return list(range(n_features))
        first = steps[0]
    if _known_name(first) != "ColumnTransformer":
        return list(range(n_features))
    used = set()
    for name, trans, _ in first.transformers_:
        if isinstance(trans, str) and trans == "drop":
            continue
        sl = first.output_indices_.get(name)
        if sl is None or sl.stop == sl.start:
            continue
        used.update(int(i) for i in first._transformer_to_input_indices.get(name, []))
    return sorted(used)

