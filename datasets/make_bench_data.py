"""Make a large Parquet file for benchmarks (not committed): rows resampled from a shipped
dataset with small multiplicative noise and the same share of missing values.

    PY=$HOME/.cache/mle-venv/bin/python
    $PY datasets/make_bench_data.py diabetes 10000000 /tmp/diabetes_10m.parquet

The file is written row group by row group (memory stays bounded by one chunk).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent
CHUNK = 1_000_000


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    name, rows, out = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])
    src = pq.read_table(ROOT / f"{name}.parquet")
    feats = [f.name for f in src.schema if pa.types.is_floating(f.type)]
    base = np.column_stack([src[c].to_numpy(zero_copy_only=False) for c in feats])
    rng = np.random.default_rng(1)
    schema = pa.schema([(c, pa.float64()) for c in feats])
    with pq.ParquetWriter(out, schema, compression="snappy") as w:
        done = 0
        while done < rows:
            n = min(CHUNK, rows - done)
            idx = rng.integers(0, base.shape[0], n)
            x = base[idx] * rng.normal(1.0, 0.01, size=(n, len(feats)))
            arrays = [pa.array(x[:, j], from_pandas=True) for j in range(len(feats))]
            w.write_table(pa.table(arrays, schema=schema))
            done += n
    mib = out.stat().st_size / 2**20
    print(f"wrote {rows} rows x {len(feats)} features to {out} ({mib:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
