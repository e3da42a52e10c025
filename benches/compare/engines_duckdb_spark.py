"""DuckDB and Spark front ends against the framework's own predict in the same engines.

One LightGBM regressor (100 trees, 31 leaves, 20 float features; LightGBM's defaults) and one
Parquet data set of N rows (1M by default, in 8 files), then:

- DuckDB, 1 and 2 threads: ``SELECT sum(model(f0, ..., f19)) FROM 'data/*.parquet'`` with the
  function of ``mle_runtime.duckdb.register`` vs a vectorized Arrow Python UDF calling
  ``lightgbm.Booster.predict`` (the fastest kind of Python UDF DuckDB has; ``num_threads=1``
  per call, DuckDB's threads give the parallelism); and the runtime alone on the whole table
  (``rt.predict``) as the floor.
- Spark local[1] and local[2] (one per child process): ``mle_runtime.spark.score`` vs an
  MLflow-style ``pandas_udf`` (the booster loaded once per worker process, ``predict`` on a
  pandas DataFrame of the batch), each summed over the prediction so every row is scored.

Before anything is timed, every row's prediction of ours and the framework's are compared in
the engine itself (``max(abs(ours - framework))`` over all rows, 1e-9 at most; and the row
count). Each figure is the best of ``--repeat`` timed runs after one warm-up run (wall clock).

    python benches/compare/engines_duckdb_spark.py [--rows N] [--repeat R] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd  # module level: pandas_udf resolves its type hints in this module

N_FEATURES = 20
FILES = 8
MAX_DIFF = 1e-9  # per row, ours vs LightGBM's predict (both in float64)


def make_data(out: Path, rows: int) -> tuple[str, str, str]:
    import lightgbm as lgb
    import mle_runtime as mle
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    data_dir = out / f"data_{rows}"
    model_txt = out / "lgb_reg.txt"
    model_mle = out / "lgb_reg.mle"
    names = [f"f{i}" for i in range(N_FEATURES)]
    if not (data_dir / "_done").exists():
        rng = np.random.default_rng(0)
        w = rng.normal(size=N_FEATURES)
        Xt = rng.normal(size=(50_000, N_FEATURES))
        y = Xt @ w + np.sin(3 * Xt[:, 0]) * Xt[:, 1] + rng.normal(scale=0.1, size=len(Xt))
        booster = lgb.train({"objective": "regression", "num_leaves": 31, "verbose": -1,
                             "num_threads": 1},
                            lgb.Dataset(Xt, y, feature_name=names), num_boost_round=100)
        booster.save_model(str(model_txt))
        mle.export_model(booster, str(model_mle), feature_names=names)
        data_dir.mkdir(parents=True, exist_ok=True)
        per = -(-rows // FILES)
        for i in range(FILES):
            n = min(per, rows - i * per)
            X = rng.normal(size=(n, N_FEATURES))
            X[rng.random(X.shape) < 0.02] = np.nan
            pq.write_table(pa.table({c: X[:, j] for j, c in enumerate(names)}),
                           data_dir / f"part-{i}.parquet")
        (data_dir / "_done").write_text("ok")
    return str(data_dir), str(model_txt), str(model_mle)


def best(fn, repeat: int) -> tuple[float, object]:
    fn()  # warm-up
    times, value = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
    return min(times), value


def bench_duckdb(data_dir: str, model_txt: str, model_mle: str, repeat: int) -> list[dict]:
    import duckdb
    import lightgbm as lgb
    import mle_runtime as mle
    import mle_runtime.duckdb as mdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [f"f{i}" for i in range(N_FEATURES)]
    booster = lgb.Booster(model_file=model_txt)

    def lgb_udf(*cols):
        X = np.column_stack([c.to_numpy() for c in cols])
        return pa.array(booster.predict(X, num_threads=1))

    import inspect

    lgb_udf.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_ONLY) for n in names])
    glob = f"{data_dir}/*.parquet"
    args = ", ".join(names)
    rows = []
    table = pq.read_table(data_dir)
    rt = mle.load_model(model_mle)
    for threads in (1, 2):
        con = duckdb.connect()
        con.execute(f"SET threads = {threads}")
        mdb.register(con, model_mle, name="mle_fn")
        con.create_function("lgb_fn", lgb_udf, ["DOUBLE"] * N_FEATURES, "DOUBLE",
                            type="arrow", null_handling="special")
        n, diff = con.execute(f"SELECT count(*), max(abs(mle_fn({args}) - lgb_fn({args}))) "
                              f"FROM '{glob}'").fetchone()
        if n != table.num_rows or not diff <= MAX_DIFF:
            raise SystemExit(f"duckdb, {threads} thread(s): {n} rows, max |ours - lightgbm| "
                             f"= {diff!r}")
        print(f"duckdb {threads} thread(s): {n} rows agree, max abs diff {diff:.1e}",
              file=sys.stderr, flush=True)
        t_mle, v_mle = best(lambda con=con: con.execute(
            f"SELECT sum(mle_fn({args})) FROM '{glob}'").fetchone()[0], repeat)
        t_lgb, v_lgb = best(lambda con=con: con.execute(
            f"SELECT sum(lgb_fn({args})) FROM '{glob}'").fetchone()[0], repeat)
        t_read, _ = best(lambda con=con: con.execute(
            f"SELECT sum({' + '.join(names)}) FROM '{glob}'").fetchone()[0], repeat)
        t_rt, _ = best(lambda threads=threads: rt.predict(table, threads=threads), repeat)
        rows.append({"engine": "duckdb", "threads": threads, "rows": table.num_rows,
                     "mle_s": t_mle, "framework_udf_s": t_lgb, "scan_only_s": t_read,
                     "rt_predict_s": t_rt, "speedup": t_lgb / t_mle, "max_abs_diff": diff,
                     "sum_mle": v_mle, "sum_framework": v_lgb})
        con.close()
    return rows


def bench_spark(data_dir: str, model_txt: str, model_mle: str, repeat: int,
                cores: int) -> dict:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    import mle_runtime.spark as ms
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    spark = (SparkSession.builder.master(f"local[{cores}]").appName("mle-bench")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "2g")
             .config("spark.sql.files.maxPartitionBytes", str(8 << 20))
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    where = spark.sparkContext.parallelize([0], 1).map(
        lambda _: __import__("mle_runtime")._native.__file__).collect()[0]
    names = [f"f{i}" for i in range(N_FEATURES)]
    df = spark.read.parquet(data_dir)
    partitions = df.rdd.getNumPartitions()
    n = df.count()

    @pandas_udf("double")
    def lgb_predict(X: pd.DataFrame) -> pd.Series:
        # As MLflow's spark_udf: the feature columns as one struct (a pandas DataFrame per
        # batch), the model loaded once per worker process, predict per batch.
        import lightgbm as lgb

        g = globals()
        if "_bench_booster" not in g:
            g["_bench_booster"] = lgb.Booster(model_file=model_txt)
        return pd.Series(g["_bench_booster"].predict(X, num_threads=1))

    def run_mle():
        return ms.score(df, model_mle).agg(F.sum("prediction")).collect()[0][0]

    def run_lgb():
        return df.select(lgb_predict(F.struct(*names)).alias("p")).agg(F.sum("p")).collect()[0][0]

    def run_scan():
        return df.agg(F.sum(sum(F.col(c) for c in names))).collect()[0][0]

    both = ms.score(df, model_mle).withColumn("p_lgb", lgb_predict(F.struct(*names)))
    checked, diff = both.agg(F.count("*"), F.max(F.abs(F.col("prediction") - F.col("p_lgb")))
                             ).collect()[0]
    if checked != n or not diff <= MAX_DIFF:
        raise SystemExit(f"spark local[{cores}]: {checked} of {n} rows, max |ours - lightgbm| "
                         f"= {diff!r}")
    print(f"spark local[{cores}]: {n} rows agree, max abs diff {diff:.1e}", file=sys.stderr,
          flush=True)
    t_mle, v_mle = best(run_mle, repeat)
    t_lgb, v_lgb = best(run_lgb, repeat)
    t_scan, _ = best(run_scan, repeat)
    spark.stop()
    return {"engine": "spark", "cores": cores, "rows": n, "partitions": partitions,
            "mle_s": t_mle, "framework_udf_s": t_lgb, "scan_only_s": t_scan,
            "speedup": t_lgb / t_mle, "max_abs_diff": diff, "sum_mle": v_mle,
            "sum_framework": v_lgb, "executor_native": where}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--out", default="/tmp/mle-bench-engines")
    ap.add_argument("--only", choices=["duckdb", "spark"], default=None)
    ap.add_argument("--spark-cores", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    data_dir, model_txt, model_mle = make_data(out, args.rows)
    import mle_runtime

    print("mle_runtime native:", mle_runtime._native.__file__, file=sys.stderr)
    if args.spark_cores is not None:  # child process: one Spark configuration
        print(json.dumps(bench_spark(data_dir, model_txt, model_mle, args.repeat,
                                     args.spark_cores)))
        return
    results = []
    if args.only in (None, "duckdb"):
        results += bench_duckdb(data_dir, model_txt, model_mle, args.repeat)
        print(json.dumps(results[-2:], indent=1), flush=True)
    if args.only in (None, "spark"):
        for cores in (1, 2):
            cmd = [sys.executable, __file__, "--rows", str(args.rows), "--repeat",
                   str(args.repeat), "--out", str(out), "--spark-cores", str(cores)]
            res = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if res.returncode != 0:
                sys.stderr.write(res.stderr[-4000:])
                raise SystemExit(f"spark local[{cores}] failed")
            results.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(json.dumps(results[-1]), flush=True)
    (out / "engines_duckdb_spark.json").write_text(json.dumps(results, indent=1))
    print("\n| engine | threads/cores | ours (s) | framework UDF (s) | speedup | scan only (s) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        tc = r.get("threads", r.get("cores"))
        print(f"| {r['engine']} | {tc} | {r['mle_s']:.2f} | {r['framework_udf_s']:.2f} | "
              f"{r['speedup']:.1f}× | {r['scan_only_s']:.2f} |")


if __name__ == "__main__":
    main()
