"""datafusion-python with ``mle_runtime.datafusion.register`` against ``mle sql``.

One LightGBM regressor (100 trees, 31 leaves, 20 float features; LightGBM's defaults) and one
Parquet data set of N rows (1M by default, in 8 files); the same query in both, at 1 and 2
threads (datafusion-python: ``target_partitions``; ``mle sql``: ``--threads``, which sets its
partitions and worker threads)::

    SELECT sum(mle_predict('model.mle', f0, ..., f19)) FROM t

and, for the cost of reading alone, ``SELECT sum(nanvl(f0, 0) + ... + nanvl(f19, 0))
FROM t`` (the data has 2 % NaN). ``t`` is the directory of Parquet files: registered with
``register_parquet`` in datafusion-python, a quoted path in ``FROM`` for ``mle sql`` (its
``--table`` takes files only). Before anything is timed, both sums are checked equal (1e-9
relative) to each other and to ``rt.predict`` on the whole table. Each figure is the best of
``--repeat`` runs after one warm-up (wall clock: for ``mle sql`` the whole process, for
datafusion-python a fresh ``SessionContext``, ``register``, planning and collecting; the
process keeps its compiled model between runs).

    python benches/compare/engines_datafusion.py --mle target/release/mle [--rows N]
        [--repeat R] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

N_FEATURES = 20
FILES = 8


def make_data(out: Path, rows: int) -> tuple[Path, Path]:
    import lightgbm as lgb
    import mle_runtime as mle
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / f"df_data_{rows}"
    done = out / f"df_data_{rows}.done"  # outside the directory: it is a table
    model = out / "df_lgb_reg.mle"
    names = [f"f{i}" for i in range(N_FEATURES)]
    if not done.exists() or not model.exists():
        rng = np.random.default_rng(0)
        w = rng.normal(size=N_FEATURES)
        Xt = rng.normal(size=(50_000, N_FEATURES))
        y = Xt @ w + np.sin(3 * Xt[:, 0]) * Xt[:, 1] + rng.normal(scale=0.1, size=len(Xt))
        booster = lgb.train({"objective": "regression", "num_leaves": 31, "verbose": -1,
                             "num_threads": 1},
                            lgb.Dataset(Xt, y, feature_name=names), num_boost_round=100)
        mle.export_model(booster, str(model), feature_names=names)
        data_dir.mkdir(parents=True, exist_ok=True)
        per = -(-rows // FILES)
        for i in range(FILES):
            n = min(per, rows - i * per)
            X = rng.normal(size=(n, N_FEATURES))
            X[rng.random(size=X.shape) < 0.02] = np.nan
            pq.write_table(pa.table({c: X[:, j] for j, c in enumerate(names)}),
                           data_dir / f"part-{i}.parquet")
        done.write_text("")
    return data_dir, model


def best(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up (file cache, model cache of the process)
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return min(times), value


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mle", required=True, help="the mle binary (a release build)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("/tmp/mle-bench-datafusion"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)

    import datafusion
    from mle_runtime import datafusion as mdf

    data_dir, model = make_data(a.out, a.rows)
    names = [f"f{i}" for i in range(N_FEATURES)]
    score_q = f"SELECT sum(mle_predict('{model}', {', '.join(names)})) AS s FROM t"
    # The data has NaN (missing values): nanvl keeps the scan's sum a number to compare.
    read_q = f"SELECT sum({' + '.join(f'nanvl({c}, 0)' for c in names)}) AS s FROM t"
    table_sql = f"'{data_dir}/'"

    def df_python(query: str, threads: int):
        def run():
            ctx = datafusion.SessionContext(
                datafusion.SessionConfig().with_target_partitions(threads))
            mdf.register(ctx)
            ctx.register_parquet("t", str(data_dir))
            return ctx.sql(query).to_pylist()[0]["s"]
        return run

    def mle_sql(query: str, threads: int):
        def run():
            cli_query = query.replace(" FROM t", f" FROM {table_sql}")
            out = subprocess.run([a.mle, "sql", cli_query, "--threads", str(threads)],
                                 check=True, capture_output=True, text=True).stdout
            # A pretty-printed table: the one value is on the line after the header's rule.
            cells = [ln.strip("| ") for ln in out.splitlines() if ln.startswith("|")]
            return float(cells[-1])
        return run

    def close(x: float, y: float) -> bool:
        return abs(x - y) <= 1e-9 * max(abs(x), abs(y), 1.0)

    # Outputs first: both engines, both thread counts, and the runtime on the whole table.
    import mle_runtime as mle
    import pyarrow.parquet as pq

    want = float(mle.load_model(str(model)).predict(pq.read_table(data_dir)).sum())
    for threads in (1, 2):
        got = {"datafusion-python": df_python(score_q, threads)(),
               "mle sql": mle_sql(score_q, threads)()}
        for who, v in got.items():
            if not close(v, want):
                raise SystemExit(f"{who}, {threads} thread(s): sum {v!r} != rt.predict {want!r}")
        v_py, v_cli = df_python(read_q, threads)(), mle_sql(read_q, threads)()
        if not close(v_py, v_cli):
            raise SystemExit(f"scan sums differ: {v_py!r} vs {v_cli!r}")
    print(f"outputs agree: sum of predictions {want!r} (rt.predict)", flush=True)

    results = []
    for threads in (1, 2):
        row = {"threads": threads, "rows": a.rows}
        for key, query in (("score", score_q), ("read", read_q)):
            t_py, v_py = best(df_python(query, threads), a.repeat)
            t_cli, v_cli = best(mle_sql(query, threads), a.repeat)
            row[f"{key}_datafusion_python_s"] = round(t_py, 4)
            row[f"{key}_mle_sql_s"] = round(t_cli, 4)
            row[f"{key}_value_datafusion_python"] = v_py
            row[f"{key}_value_mle_sql"] = v_cli
        row["score_overhead_pct"] = round(
            100.0 * (row["score_datafusion_python_s"] / row["score_mle_sql_s"] - 1.0), 1)
        results.append(row)
        print(json.dumps(row), flush=True)
    info = {"cpus": os.cpu_count(), "datafusion": datafusion.__version__, "results": results}
    (a.out / "engines_datafusion.json").write_text(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
