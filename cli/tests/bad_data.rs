//! Bad data through `mle score` and `mle sql`: corrupt, truncated and empty Parquet files,
//! non-numeric feature columns, NaN / ±Inf / extreme values, zero-row files and zero-row row
//! groups. Each gives a clear error (exit status 1, the file or column named) or a correct
//! result: the same values the executor computes row by row from the same inputs.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Float32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::arrow::ArrowWriter;
use mle_exec::{Model, OutputData, Session};
use mle_format::{ClassLabels, ReadOptions};

mod common;
use common::{fails, mle, ok, p, repo, stderr};

const IRIS: &str = "datasets/models/iris.mle";
const DIABETES: &str = "datasets/models/diabetes.mle";
const IRIS_DATA: &str = "datasets/iris.parquet";
const IRIS_FEATURES: &str = "sepal_length, sepal_width, petal_length, petal_width";

fn write_parquet(path: &Path, batches: &[RecordBatch]) {
    let f = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(f, batches[0].schema(), None).unwrap();
    for b in batches {
        w.write(b).unwrap();
        // One row group per batch, an empty batch included.
        w.flush().unwrap();
    }
    w.close().unwrap();
}

fn read_parquet(path: &Path) -> (Arc<Schema>, Vec<RecordBatch>) {
    let b = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap()).unwrap();
    let schema = b.schema().clone();
    (schema, b.build().unwrap().map(|b| b.unwrap()).collect())
}

fn concat(path: &Path) -> RecordBatch {
    let (schema, batches) = read_parquet(path);
    datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap()
}

fn score_sql(model: &str, features: &str, input: &Path) -> String {
    format!(
        "SELECT mle_predict('{model}', {features}) AS prediction, \
         mle_predict_proba('{model}', {features}) AS probabilities FROM '{}'",
        input.display()
    )
}

// ------------------------------------------------------------ broken files

#[test]
fn corrupt_truncated_and_zero_byte_files_are_refused_by_name_and_leave_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(repo().join(IRIS_DATA)).unwrap();
    let mut corrupt = good.clone();
    // Garble the first column chunk's pages (the footer stays readable).
    for b in &mut corrupt[200..400] {
        *b ^= 0xff;
    }
    let cases: [(&str, Vec<u8>, &str, &str); 3] = [
        (
            "corrupt.parquet",
            corrupt,
            "cannot read {f}",
            "query failed reading {f}",
        ),
        (
            "truncated.parquet",
            good[..good.len() / 2].to_vec(),
            "{f} is not a readable Parquet file",
            "{f} is not a readable Parquet file",
        ),
        (
            "empty-0-bytes.parquet",
            Vec::new(),
            "{f} is not a readable Parquet file",
            "{f} is not a readable Parquet file",
        ),
    ];
    for (name, bytes, score_msg, sql_msg) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        let fname = f.display().to_string();
        // An output that exists already is left as it was when scoring fails.
        let out = dir.path().join("out.parquet");
        std::fs::write(&out, b"previous").unwrap();
        let o = mle(&["score", "-m", IRIS, p(&f), "-o", p(&out)]);
        fails(&o, &[&score_msg.replace("{f}", &fname)]);
        assert_eq!(std::fs::read(&out).unwrap(), b"previous", "{name}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        let sql_out = dir.path().join("sql.parquet");
        let o = mle(&[
            "sql",
            &score_sql(IRIS, IRIS_FEATURES, &f),
            "-o",
            p(&sql_out),
            "--threads",
            "1",
        ]);
        fails(&o, &[&sql_msg.replace("{f}", &fname)]);
        assert!(!sql_out.exists(), "{name}: sql left an output");
        // The same file registered with --table, printing a table.
        let o = mle(&[
            "sql",
            &format!("SELECT mle_predict('{IRIS}', {IRIS_FEATURES}) FROM t"),
            "--table",
            &format!("t={fname}"),
        ]);
        fails(&o, &[&sql_msg.replace("{f}", &fname)]);
    }
}

#[test]
fn non_numeric_feature_columns_are_named_even_in_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("sepal_length", DataType::Float64, true),
        Field::new("sepal_width", DataType::Utf8, true),
        Field::new("petal_length", DataType::Float64, true),
        Field::new("petal_width", DataType::Float64, true),
    ]));
    for rows in [3usize, 0] {
        let f64s = || Arc::new(Float64Array::from(vec![1.0; rows])) as ArrayRef;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                f64s(),
                Arc::new(StringArray::from(vec!["3.5"; rows])),
                f64s(),
                f64s(),
            ],
        )
        .unwrap();
        let f = dir.path().join(format!("utf8-{rows}.parquet"));
        write_parquet(&f, &[batch]);
        let out = dir.path().join("out.parquet");
        let o = mle(&["score", "-m", IRIS, p(&f), "-o", p(&out)]);
        fails(
            &o,
            &[
                &format!("cannot bind the columns of {}", f.display()),
                "column \"sepal_width\" (feature \"sepal_width\") has type Utf8, which is not numeric",
            ],
        );
        assert!(!out.exists());
        let o = mle(&["sql", &score_sql(IRIS, IRIS_FEATURES, &f)]);
        fails(
            &o,
            &[
                "argument 3 (sepal_width) for feature \"sepal_width\"",
                "which is not numeric",
            ],
        );
    }
}

// ------------------------------------------------------------ extreme values

/// Special values per column type; feature `k` of a model gets type `k % 4`, and row `r` the
/// value `(r + k) % len` of its list, so every value meets every other column's values.
fn extreme_columns(features: &[String], rows: usize) -> (RecordBatch, Vec<Vec<f64>>) {
    let f64s = [
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::MAX,
        -f64::MAX,
        1e300,
        -1e300,
        f64::MIN_POSITIVE,
        -0.0,
        0.0,
        5.1,
        -1e-300,
    ];
    let f32s = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        3.4,
        0.0,
        -0.0,
        1e-38,
    ];
    let i64s = [i64::MAX, i64::MIN, 0, 1, -1, (1 << 53) + 1, 4];
    let u64s = [u64::MAX, 0, 7, 1 << 60, 2];
    let mut fields = Vec::new();
    let mut cols: Vec<ArrayRef> = Vec::new();
    let mut reference = vec![vec![0.0f64; features.len()]; rows];
    for (k, name) in features.iter().enumerate() {
        let at = |r: usize, len: usize| (r + k) % len;
        let (dt, col): (DataType, ArrayRef) = match k % 4 {
            0 => {
                // Also a NULL in the first row: a missing value, like NaN.
                let v: Vec<Option<f64>> = (0..rows)
                    .map(|r| (r != 0).then(|| f64s[at(r, f64s.len())]))
                    .collect();
                for (r, x) in v.iter().enumerate() {
                    reference[r][k] = x.unwrap_or(f64::NAN);
                }
                (DataType::Float64, Arc::new(Float64Array::from(v)))
            }
            1 => {
                let v: Vec<f32> = (0..rows).map(|r| f32s[at(r, f32s.len())]).collect();
                for (r, x) in v.iter().enumerate() {
                    reference[r][k] = *x as f64;
                }
                (DataType::Float32, Arc::new(Float32Array::from(v)))
            }
            2 => {
                let v: Vec<i64> = (0..rows).map(|r| i64s[at(r, i64s.len())]).collect();
                for (r, x) in v.iter().enumerate() {
                    reference[r][k] = *x as f64;
                }
                (DataType::Int64, Arc::new(Int64Array::from(v)))
            }
            _ => {
                let v: Vec<u64> = (0..rows).map(|r| u64s[at(r, u64s.len())]).collect();
                for (r, x) in v.iter().enumerate() {
                    reference[r][k] = *x as f64;
                }
                (DataType::UInt64, Arc::new(UInt64Array::from(v)))
            }
        };
        fields.push(Field::new(name, dt, true));
        cols.push(col);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    (batch, reference)
}

/// The executor's outputs row by row: (prediction as f64 bits, probabilities as f64 bits).
fn executor_rows(model: &Arc<Model>, rows: &[Vec<f64>]) -> Vec<(u64, Vec<u64>)> {
    let mut s = Session::new(model.clone());
    let labels = model.metadata().output.class_labels.clone();
    rows.iter()
        .map(|row| {
            let out = s.predict_row(row).unwrap();
            let pred = match out.get("label").or_else(|| out.get("prediction")) {
                Some(o) => match &o.data {
                    OutputData::I64(v) => match &labels {
                        Some(ClassLabels::Int(l)) => (l[v[0] as usize] as f64).to_bits(),
                        _ => panic!("unexpected labels"),
                    },
                    OutputData::F64(v) => v[0].to_bits(),
                    OutputData::F32(v) => (v[0] as f64).to_bits(),
                },
                None => panic!("no prediction output"),
            };
            let proba = match out.get("probabilities").map(|o| &o.data) {
                Some(OutputData::F64(v)) => v.iter().map(|x| x.to_bits()).collect(),
                Some(OutputData::F32(v)) => v.iter().map(|x| (*x as f64).to_bits()).collect(),
                _ => Vec::new(),
            };
            (pred, proba)
        })
        .collect()
}

/// The prediction and probability columns of a scored batch, as f64 bits.
fn scored_rows(b: &RecordBatch) -> Vec<(u64, Vec<u64>)> {
    let pred = b.column_by_name("prediction").unwrap();
    assert_eq!(pred.null_count(), 0);
    let preds: Vec<u64> = match pred.data_type() {
        DataType::Int64 => pred
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|&v| (v as f64).to_bits())
            .collect(),
        DataType::Float64 => pred
            .as_primitive::<Float64Type>()
            .values()
            .iter()
            .map(|v| v.to_bits())
            .collect(),
        t => panic!("unexpected prediction type {t}"),
    };
    let proba = b.column_by_name("probabilities");
    preds
        .into_iter()
        .enumerate()
        .map(|(r, pr)| {
            let pb = match proba {
                Some(c) if !c.is_null(r) => c
                    .as_fixed_size_list()
                    .value(r)
                    .as_primitive::<Float64Type>()
                    .values()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
                _ => Vec::new(),
            };
            (pr, pb)
        })
        .collect()
}

#[test]
fn nan_infinities_and_extreme_values_score_like_the_executor_in_score_and_sql() {
    let dir = tempfile::tempdir().unwrap();
    for model_path in [IRIS, DIABETES] {
        let model =
            Arc::new(Model::load(repo().join(model_path), &ReadOptions::default()).unwrap());
        let features = model.metadata().input.feature_names.clone();
        let rows = 60;
        let (batch, reference) = extreme_columns(&features, rows);
        let want = executor_rows(&model, &reference);
        // The executor itself produced finite, valid outputs for these rows (tree models).
        for (pred, proba) in &want {
            assert!(!f64::from_bits(*pred).is_nan(), "{model_path}");
            let s: f64 = proba.iter().map(|b| f64::from_bits(*b)).sum();
            assert!(proba.is_empty() || (s - 1.0).abs() < 1e-9, "{model_path}");
        }
        let input = dir.path().join("extreme.parquet");
        // Several row groups, so several batches.
        write_parquet(&input, &[batch.slice(0, 25), batch.slice(25, rows - 25)]);

        let out = dir.path().join("scored.parquet");
        ok(&mle(&[
            "score",
            "-m",
            model_path,
            p(&input),
            "-o",
            p(&out),
            "--batch-size",
            "7",
        ]));
        let scored = concat(&out);
        assert_eq!(scored.num_rows(), rows);
        assert_eq!(scored_rows(&scored), want, "mle score, {model_path}");
        // The input columns pass through unchanged (NaN and infinities included).
        for (i, f) in batch.schema().fields().iter().enumerate() {
            assert_eq!(scored.column_by_name(f.name()).unwrap(), batch.column(i));
        }

        let feats = features.join(", ");
        let query = if model_path == IRIS {
            score_sql(model_path, &feats, &input)
        } else {
            format!(
                "SELECT mle_predict('{model_path}', {feats}) AS prediction FROM '{}'",
                input.display()
            )
        };
        let sql_out = dir.path().join("sql.parquet");
        ok(&mle(&["sql", &query, "-o", p(&sql_out), "--threads", "1"]));
        assert_eq!(
            scored_rows(&concat(&sql_out)),
            want,
            "mle sql, {model_path}"
        );
    }
}

// ------------------------------------------------------------ empty files and row groups

#[test]
fn zero_row_files_give_zero_row_outputs_with_the_output_columns() {
    let dir = tempfile::tempdir().unwrap();
    let (_, batches) = read_parquet(&repo().join(IRIS_DATA));
    let empty = batches[0].slice(0, 0);
    let f = dir.path().join("no-rows.parquet");
    write_parquet(&f, &[empty]);
    let out = dir.path().join("out.parquet");
    let o = mle(&["score", "-m", IRIS, p(&f), "-o", p(&out)]);
    ok(&o);
    assert!(stderr(&o).contains("scored 0 rows"), "{}", stderr(&o));
    let (schema, batches) = read_parquet(&out);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    assert_eq!(
        schema.field_with_name("prediction").unwrap().data_type(),
        &DataType::Int64
    );
    assert!(matches!(
        schema.field_with_name("probabilities").unwrap().data_type(),
        DataType::FixedSizeList(_, 3)
    ));

    let sql_out = dir.path().join("sql.parquet");
    let o = mle(&[
        "sql",
        &score_sql(IRIS, IRIS_FEATURES, &f),
        "-o",
        p(&sql_out),
    ]);
    ok(&o);
    assert!(stderr(&o).contains("wrote 0 rows"), "{}", stderr(&o));
    let (schema, batches) = read_parquet(&sql_out);
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 0);
    assert_eq!(
        schema.field_with_name("prediction").unwrap().data_type(),
        &DataType::Int64
    );
    let text = ok(&mle(&[
        "sql",
        &format!(
            "SELECT count(*) AS n, sum(mle_predict('{IRIS}', {IRIS_FEATURES})) AS s FROM '{}'",
            f.display()
        ),
    ]));
    assert!(text.contains("| 0 "), "{text}");
}

#[test]
fn zero_row_row_groups_between_others_are_skipped_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let full = concat(&repo().join(IRIS_DATA));
    // Written by pyarrow (`ParquetWriter.write_table` of 0, 3, 0, 2 and 0 rows of
    // datasets/iris.parquet): the arrow-rs writer never emits an empty row group.
    let f = repo().join("cli/tests/data/zero_row_groups.parquet");
    let meta = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&f).unwrap())
        .unwrap()
        .metadata()
        .clone();
    let groups: Vec<i64> = meta.row_groups().iter().map(|g| g.num_rows()).collect();
    assert!(
        groups.contains(&0) && groups.iter().sum::<i64>() == 5,
        "{groups:?}"
    );

    // Reference: the same five rows scored from a file without gaps.
    let plain = dir.path().join("plain.parquet");
    write_parquet(&plain, &[full.slice(0, 5)]);
    let (o1, o2) = (dir.path().join("o1.parquet"), dir.path().join("o2.parquet"));
    for batch_size in ["1", "4", "65536"] {
        ok(&mle(&[
            "score",
            "-m",
            IRIS,
            p(&f),
            "-o",
            p(&o1),
            "--batch-size",
            batch_size,
        ]));
        ok(&mle(&["score", "-m", IRIS, p(&plain), "-o", p(&o2)]));
        assert_eq!(concat(&o1), concat(&o2), "batch size {batch_size}");
    }
    let q = |file: &Path| {
        let out = dir.path().join("q.parquet");
        ok(&mle(&[
            "sql",
            &score_sql(IRIS, IRIS_FEATURES, file),
            "-o",
            p(&out),
            "--threads",
            "1",
        ]));
        concat(&out)
    };
    let (a, b) = (q(&f), q(&plain));
    assert_eq!(a.num_rows(), 5);
    assert_eq!(a, b);
}
