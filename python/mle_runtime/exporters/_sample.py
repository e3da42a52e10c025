"""The validation sample an exporter makes when ``export_model`` is given no
``sample_input``: it respects the model's input schema, so that the framework's own predict
accepts it and every rule of the export is exercised.

- float features: standard-normal values (as before);
- category features: every category of the vocabulary, plus values outside it (when the
  framework maps them to missing rather than raising) and missing values;
- integer-coded categorical features without a vocabulary (XGBoost and LightGBM trained on
  numpy codes): the codes the trees split on, codes beyond them, negative codes and NaN.

``frame=True`` gives a pandas DataFrame named by the features (what a model fitted on a
DataFrame predicts on); category features are then pandas ``category`` columns unless the
framework read them as numbers, or object columns of strings with NaN for missing
(``as_object``: what a scikit-learn pipeline is fitted on). ``positive`` draws float
features as absolute values (a pipeline's ``log1p`` then stays defined). ``frame=False``
gives a float64 matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._graph import Feature

#: A value no vocabulary of ours holds (for the "unseen category" rows).
UNSEEN = "\u2205unseen"

#: Fractions of the rows of a category column outside the vocabulary and missing.
UNSEEN_SHARE = 0.1
MISSING_SHARE = 0.1


@dataclass
class SampleSpec:
    """How to draw one feature: its :class:`Feature`, whether a frame holds it as a pandas
    ``category`` column (``category_dtype``), and for integer-coded categorical features
    without a vocabulary the largest code the model knows (``max_code``)."""

    feature: Feature
    category_dtype: bool = True
    max_code: int | None = None
    as_object: bool = False
    positive: bool = False


def _category_values(f: Feature, rows: int, rng, *, numeric: bool) -> list:
    cats = f.categories
    n = len(cats)
    n_missing = max(int(rows * MISSING_SHARE), 1) if f.missing else 0
    n_unseen = max(int(rows * UNSEEN_SHARE), 1) if f.unknown != "error" else 0
    n_known = max(rows - n_missing - n_unseen, 0)
    known = [cats[i % n] for i in range(n_known)] if n else []
    if f.is_string_vocabulary:
        unseen = [UNSEEN] * n_unseen
    else:
        top = int(np.max(cats)) if n else 0
        # Outside an integer vocabulary: beyond it, negative, and (for matrices) not integral.
        pool = [top + 1, -1, top + 7] + ([0.5, top + 0.25] if numeric else [])
        unseen = [pool[i % len(pool)] for i in range(n_unseen)]
        known = [int(c) for c in known]
    values = known + unseen + [None] * n_missing
    order = rng.permutation(len(values))
    return [values[i] for i in order][:rows]


def _code_values(max_code: int, rows: int, rng) -> np.ndarray:
    """Codes of an integer-coded categorical feature: 0..max_code+2, -1 and NaN."""
    pool = np.concatenate([np.arange(max_code + 3, dtype=np.float64), [-1.0, np.nan]])
    return pool[rng.integers(0, pool.size, rows)]


def schema_sample(specs: list[SampleSpec], rows: int = 64, *, frame: bool, seed: int = 0):
    """A sample of ``rows`` rows (at least three per category of the largest vocabulary)."""
    rng = np.random.default_rng(seed)
    largest = max((len(s.feature.categories) for s in specs
                   if s.feature.kind == "category"), default=0)
    rows = max(rows, 3 * largest + 8)
    cols = {}
    for s in specs:
        f = s.feature
        if f.kind == "category":
            vals = _category_values(f, rows, rng, numeric=not (frame and s.category_dtype))
            if frame and s.as_object and f.is_string_vocabulary:
                cols[f.name] = np.array([np.nan if v is None else v for v in vals],
                                        dtype=object)
            elif frame and s.category_dtype and not s.as_object:
                import pandas as pd

                cols[f.name] = pd.Categorical(vals)
            else:
                cols[f.name] = np.array([np.nan if v is None else v for v in vals],
                                        dtype=np.float64)
        elif s.max_code is not None:
            cols[f.name] = _code_values(s.max_code, rows, rng)
        else:
            x = rng.standard_normal(rows)
            cols[f.name] = np.abs(x) if s.positive else x
    if frame:
        import pandas as pd

        return pd.DataFrame(cols)
    return np.column_stack([np.asarray(c, dtype=np.float64) for c in cols.values()]) \
        if cols else np.zeros((rows, 0))
