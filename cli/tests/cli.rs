//! Every `mle` command, its success path and its failure paths (exit code and message).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Float32Type, Float64Type, Int64Type};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use mle_arrow::{columns_by_name, OutputKind};
use mle_exec::{Model, RunOptions, Session};
use mle_format::ReadOptions;

mod common;
use common::{fails, mle, ok, repo, stderr};

fn read_parquet(path: &Path) -> RecordBatch {
    let f = std::fs::File::open(path).unwrap();
    let r = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn f64s(a: &dyn Array) -> Vec<f64> {
    match a.data_type() {
        DataType::Float64 => a.as_primitive::<Float64Type>().values().to_vec(),
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .values()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        DataType::Int64 => a
            .as_primitive::<Int64Type>()
            .values()
            .iter()
            .map(|&v| v as f64)
            .collect(),
        t => panic!("unexpected {t}"),
    }
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The executor's outputs for `model` on `input`'s feature columns (bound by name).
fn executor_on(model: &str, input: &RecordBatch) -> mle_arrow::OutputArrays {
    let model = Arc::new(Model::load(repo().join(model), &ReadOptions::default()).unwrap());
    let kind = OutputKind::of_model(&model).unwrap();
    let feats = model.metadata().input.feature_names.clone();
    let idx = columns_by_name(&input.schema(), &feats).unwrap();
    let cols: Vec<ArrayRef> = idx.iter().map(|&i| input.column(i).clone()).collect();
    let mut s = Session::new(model);
    mle_arrow::predict_arrays(&mut s, &kind, &cols, &feats, RunOptions::default()).unwrap()
}

const CANCER_MODEL: &str = "datasets/models/breast_cancer.mle";
const CANCER_DATA: &str = "datasets/breast_cancer.parquet";

// ---------------------------------------------------------------- score

#[test]
fn score_writes_inputs_prediction_and_probabilities_equal_to_executor_and_xgboost() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("scored.parquet");
    // A small batch size: several batches stream through.
    let o = mle(&[
        "score",
        "--model",
        CANCER_MODEL,
        CANCER_DATA,
        "-o",
        p(&out),
        "--batch-size",
        "100",
    ]);
    ok(&o);
    assert!(stderr(&o).contains("scored 569 rows in"), "{}", stderr(&o));
    assert!(stderr(&o).contains("rows/s"), "{}", stderr(&o));
    let input = read_parquet(&repo().join(CANCER_DATA));
    let scored = read_parquet(&out);
    assert_eq!(scored.num_rows(), 569);
    // Input columns first, unchanged, then the outputs.
    for (i, f) in input.schema().fields().iter().enumerate() {
        assert_eq!(scored.schema().field(i).name(), f.name());
        assert_eq!(scored.column(i), input.column(i));
    }
    let pred = scored.column_by_name("prediction").unwrap();
    let proba = scored.column_by_name("probabilities").unwrap();

    // The executor on the same data.
    let exec = executor_on(CANCER_MODEL, &input);
    assert_eq!(pred, &exec.prediction);
    assert_eq!(proba, exec.probabilities.as_ref().unwrap());

    // The framework's own predictions (XGBoost, with the file's missing values).
    let want = read_parquet(&repo().join("datasets/models/breast_cancer.expected.parquet"));
    assert_eq!(
        f64s(pred.as_ref()),
        f64s(want.column_by_name("prediction").unwrap().as_ref())
    );
    let list = proba.as_fixed_size_list();
    let p1 = f64s(want.column_by_name("proba_1").unwrap().as_ref());
    for (i, w) in p1.iter().enumerate() {
        let g = f64s(list.value(i).as_ref())[1];
        assert!((g - w).abs() <= 1e-5, "row {i}: {g} vs {w}");
    }
}

#[test]
fn score_with_threads_gives_identical_output() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    ok(&mle(&[
        "score",
        "-m",
        "datasets/models/diabetes.mle",
        "datasets/diabetes.parquet",
        "-o",
        p(&a),
    ]));
    ok(&mle(&[
        "score",
        "-m",
        "datasets/models/diabetes.mle",
        "datasets/diabetes.parquet",
        "-o",
        p(&b),
        "--threads",
        "2",
        "--batch-size",
        "50",
    ]));
    let (a, b) = (read_parquet(&a), read_parquet(&b));
    assert_eq!(
        a.column_by_name("prediction"),
        b.column_by_name("prediction")
    );
    assert_eq!(
        a.column_by_name("prediction").unwrap().data_type(),
        &DataType::Float64
    );
    assert!(a.column_by_name("probabilities").is_none());
}

/// The breast-cancer data plus a string and a list column, written in row groups of 100 rows
/// (pages of 32 rows) with Snappy, with or without page indexes.
fn write_grouped_input(path: &Path, page_index: bool) -> RecordBatch {
    use datafusion::arrow::array::{ListArray, StringArray};
    use datafusion::arrow::datatypes::{Field, Int32Type, Schema};
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::basic::Compression;
    use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
    let data = read_parquet(&repo().join(CANCER_DATA));
    let n = data.num_rows();
    let note: ArrayRef = Arc::new(StringArray::from_iter(
        (0..n).map(|i| (i % 7 != 0).then(|| format!("row {i}"))),
    ));
    let tags: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
        (0..n).map(|i| Some((0..(i % 4) as i32).map(Some).collect::<Vec<_>>())),
    ));
    let mut fields: Vec<Field> = data
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("note", DataType::Utf8, true));
    fields.push(Field::new("tags", tags.data_type().clone(), true));
    let mut cols = data.columns().to_vec();
    cols.push(note);
    cols.push(tags);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let mut props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(100))
        .set_data_page_row_count_limit(32)
        .set_write_batch_size(32);
    if !page_index {
        props = props
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_offset_index_disabled(true);
    }
    let f = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(f, batch.schema(), Some(props.build())).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    batch
}

#[test]
fn score_copies_the_input_column_chunks_byte_for_byte_with_their_page_indexes_on_any_threads() {
    use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
    use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
    let dir = tempfile::tempdir().unwrap();
    let meta = |path: &Path| -> Arc<ParquetMetaData> {
        let f = std::fs::File::open(path).unwrap();
        let opts = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        ParquetRecordBatchReaderBuilder::try_new_with_options(f, opts)
            .unwrap()
            .metadata()
            .clone()
    };
    // Threads: 1 worker; 3 and 4 workers (row groups shared unevenly by 4); 8 threads, more
    // than the 6 row groups (6 workers).
    for (page_index, threads) in [(true, "1"), (false, "3"), (true, "4"), (false, "8")] {
        let input = dir
            .path()
            .join(format!("in-{page_index}-{threads}.parquet"));
        let out = dir
            .path()
            .join(format!("out-{page_index}-{threads}.parquet"));
        let batch = write_grouped_input(&input, page_index);
        // Batches of 64 rows: they neither divide the row groups nor line up with them.
        ok(&mle(&[
            "score",
            "-m",
            CANCER_MODEL,
            p(&input),
            "-o",
            p(&out),
            "--batch-size",
            "64",
            "--threads",
            threads,
        ]));
        let (mi, mo) = (meta(&input), meta(&out));
        assert_eq!(mi.num_row_groups(), 6);
        assert_eq!(mo.num_row_groups(), mi.num_row_groups());
        let (bi, bo) = (std::fs::read(&input).unwrap(), std::fs::read(&out).unwrap());
        let bytes = |b: &[u8], c: &datafusion::parquet::file::metadata::ColumnChunkMetaData| {
            let (start, len) = c.byte_range();
            b[start as usize..(start + len) as usize].to_vec()
        };
        let n_in = mi.row_group(0).num_columns();
        for (gi, go) in mi.row_groups().iter().zip(mo.row_groups()) {
            assert_eq!(gi.num_rows(), go.num_rows());
            // The input's leaves (including the string and the list's), then the new ones.
            assert_eq!(
                go.num_columns(),
                n_in + 2,
                "prediction and the probabilities' list"
            );
            for (ci, co) in gi.columns().iter().zip(go.columns()) {
                assert_eq!(co.compression(), ci.compression());
                assert_eq!(bytes(&bo, co), bytes(&bi, ci), "{}", ci.column_path());
                assert_eq!(co.statistics(), ci.statistics());
            }
        }
        // Page indexes: on every column chunk when the input has them, else on none.
        let full = |m: &ParquetMetaData| {
            m.offset_index().is_some_and(|g| {
                g.iter()
                    .all(|cols| cols.iter().all(|c| !c.page_locations().is_empty()))
            })
        };
        assert_eq!(full(&mi), page_index);
        assert_eq!(full(&mo), page_index);
        if page_index {
            // Page locations point at the copied pages in the new file.
            for (g, (oi, oo)) in mi
                .offset_index()
                .unwrap()
                .iter()
                .zip(mo.offset_index().unwrap())
                .enumerate()
            {
                for (c, (ci, co)) in oi.iter().zip(oo).enumerate().take(n_in) {
                    let shift = mo.row_group(g).column(c).byte_range().0 as i64
                        - mi.row_group(g).column(c).byte_range().0 as i64;
                    for (pi, po) in ci.page_locations().iter().zip(co.page_locations()) {
                        assert_eq!(po.offset, pi.offset + shift);
                        assert_eq!(po.compressed_page_size, pi.compressed_page_size);
                    }
                }
            }
        }
        // The values: the input's columns as they were, the model's outputs as the executor's.
        let scored = read_parquet(&out);
        for (i, f) in batch.schema().fields().iter().enumerate() {
            assert_eq!(scored.schema().field(i).name(), f.name());
            assert_eq!(scored.column(i), batch.column(i), "{}", f.name());
        }
        let exec = executor_on(CANCER_MODEL, &batch);
        assert_eq!(
            scored.column_by_name("prediction").unwrap(),
            &exec.prediction
        );
        assert_eq!(
            scored.column_by_name("probabilities").unwrap(),
            exec.probabilities.as_ref().unwrap()
        );
    }
}

#[test]
fn score_columns_override_binds_renamed_columns_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("renamed.parquet");
    // Make a file whose columns are named x0..x9 with `mle sql`.
    let model = Model::load(
        repo().join("datasets/models/diabetes.mle"),
        &ReadOptions::default(),
    )
    .unwrap();
    let feats = model.metadata().input.feature_names.clone();
    let select: Vec<String> = feats
        .iter()
        .enumerate()
        .map(|(i, f)| format!("\"{f}\" AS x{i}"))
        .collect();
    ok(&mle(&[
        "sql",
        &format!("SELECT {} FROM t", select.join(", ")),
        "--table",
        "t=datasets/diabetes.parquet",
        "-o",
        p(&renamed),
    ]));
    let out1 = dir.path().join("o1.parquet");
    let out2 = dir.path().join("o2.parquet");
    let cols: Vec<String> = (0..feats.len()).map(|i| format!("x{i}")).collect();
    ok(&mle(&[
        "score",
        "-m",
        "datasets/models/diabetes.mle",
        p(&renamed),
        "-o",
        p(&out1),
        "--columns",
        &cols.join(","),
    ]));
    ok(&mle(&[
        "score",
        "-m",
        "datasets/models/diabetes.mle",
        "datasets/diabetes.parquet",
        "-o",
        p(&out2),
    ]));
    assert_eq!(
        read_parquet(&out1).column_by_name("prediction"),
        read_parquet(&out2).column_by_name("prediction")
    );
    // Without --columns, the renamed file lacks the features: every missing one is listed.
    let o = mle(&[
        "score",
        "-m",
        "datasets/models/diabetes.mle",
        p(&renamed),
        "-o",
        p(&out1),
    ]);
    fails(
        &o,
        &[
            "does not have the model's feature columns",
            "no columns age, sex, bmi",
            "--columns",
        ],
    );
    // Wrong --columns count, and unknown --columns names.
    let o = mle(&[
        "score",
        "-m",
        "datasets/models/diabetes.mle",
        p(&renamed),
        "-o",
        p(&out1),
        "--columns",
        "x0,x1",
    ]);
    fails(
        &o,
        &[
            "--columns lists 2 columns but model",
            "takes 10 features (age, sex",
        ],
    );
    let bad = cols
        .iter()
        .map(|c| {
            if c == "x3" {
                "zz".to_string()
            } else {
                c.clone()
            }
        })
        .collect::<Vec<_>>();
    let o = mle(&[
        "score",
        "-m",
        "datasets/models/diabetes.mle",
        p(&renamed),
        "-o",
        p(&out1),
        "--columns",
        &bad.join(","),
    ]);
    fails(&o, &["bad --columns", "no column zz"]);
}

#[test]
fn score_failures_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.parquet");
    let o = mle(&["score", "-m", CANCER_MODEL, "nope.parquet", "-o", p(&out)]);
    fails(&o, &["cannot open nope.parquet", "No such file"]);
    let o = mle(&["score", "-m", "missing.mle", CANCER_DATA, "-o", p(&out)]);
    fails(&o, &["cannot load model missing.mle", "No such file"]);
    let corrupt = dir.path().join("corrupt.mle");
    let mut bytes = std::fs::read(repo().join(CANCER_MODEL)).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 0x55;
    std::fs::write(&corrupt, bytes).unwrap();
    let o = mle(&["score", "-m", p(&corrupt), CANCER_DATA, "-o", p(&out)]);
    fails(
        &o,
        &["cannot load model", "corrupt.mle", "checksum mismatch"],
    );
    let not_parquet = dir.path().join("x.parquet");
    std::fs::write(&not_parquet, b"hello").unwrap();
    let o = mle(&["score", "-m", CANCER_MODEL, p(&not_parquet), "-o", p(&out)]);
    fails(&o, &["x.parquet is not a readable Parquet file"]);
    // Scoring an already scored file would duplicate `prediction`.
    ok(&mle(&[
        "score",
        "-m",
        CANCER_MODEL,
        CANCER_DATA,
        "-o",
        p(&out),
    ]));
    let again = dir.path().join("again.parquet");
    let o = mle(&["score", "-m", CANCER_MODEL, p(&out), "-o", p(&again)]);
    fails(&o, &["already has a column named \"prediction\""]);
    let o = mle(&[
        "score",
        "-m",
        CANCER_MODEL,
        CANCER_DATA,
        "-o",
        p(&out),
        "--batch-size",
        "0",
    ]);
    fails(&o, &["--batch-size must be at least 1"]);
    let o = mle(&[
        "score",
        "-m",
        CANCER_MODEL,
        CANCER_DATA,
        "-o",
        "/nonexistent-dir/out.parquet",
    ]);
    fails(&o, &["cannot create /nonexistent-dir/out.parquet"]);
}

// ---------------------------------------------------------------- sql

#[test]
fn sql_prints_a_table_and_writes_parquet() {
    let o = mle(&[
        "sql",
        "SELECT species, mle_predict('datasets/models/iris.mle', sepal_length, sepal_width, petal_length, petal_width) AS p FROM iris LIMIT 3",
        "--table",
        "iris=datasets/iris.parquet",
        "--threads",
        "1",
    ]);
    let text = ok(&o);
    assert!(text.contains("| species") && text.contains("| p"), "{text}");
    assert!(text.contains("setosa"), "{text}");
    // A Parquet path in quotes works as a table too.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("q.parquet");
    let o = mle(&[
        "sql",
        "SELECT mle_predict_proba('datasets/models/iris.mle', sepal_length, sepal_width, petal_length, petal_width) AS proba FROM 'datasets/iris.parquet'",
        "-o",
        p(&out),
    ]);
    ok(&o);
    assert!(stderr(&o).contains("wrote 150 rows"), "{}", stderr(&o));
    let b = read_parquet(&out);
    assert_eq!(b.num_rows(), 150);
    assert!(matches!(
        b.column(0).data_type(),
        DataType::FixedSizeList(_, 3)
    ));
}

#[test]
fn sql_failures() {
    let o = mle(&["sql", "SELEC 1"]);
    fails(&o, &["query failed", "SELEC"]);
    let o = mle(&["sql", "SELECT 1", "--table", "nonsense"]);
    fails(&o, &["--table \"nonsense\" must be NAME=FILE.parquet"]);
    let o = mle(&["sql", "SELECT 1", "--table", "t=missing.parquet"]);
    fails(&o, &["--table t: no such file missing.parquet"]);
    let o = mle(&[
        "sql",
        "SELECT mle_predict('datasets/models/iris.mle', sepal_length) FROM 'datasets/iris.parquet'",
    ]);
    fails(
        &o,
        &[
            "takes 4 feature arguments after the path, but 1 was given",
            "sepal_length, sepal_width",
        ],
    );
    let o = mle(&["sql", "SELECT mle_predict('missing.mle', 1.0)"]);
    fails(&o, &["cannot open model file \"missing.mle\""]);
}

#[test]
fn broken_pipe_on_stdout_exits_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mle"))
        .args(["sql", "SELECT * FROM 'datasets/breast_cancer.parquet'"])
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut first)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status.code(),
        stderr(&out)
    );
    assert_eq!(stderr(&out), "");
}

// ---------------------------------------------------------------- inspect

#[test]
fn inspect_text_and_json() {
    let text = ok(&mle(&["inspect", CANCER_MODEL]));
    assert!(text.contains("framework    xgboost"), "{text}");
    assert!(text.contains("30 features"), "{text}");
    assert!(text.contains("mean_radius"), "{text}");
    assert!(text.contains("TreeEnsemble"), "{text}");
    let json = ok(&mle(&["inspect", "--json", "datasets/models/iris.mle"]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["metadata"]["framework"], "lightgbm");
    assert_eq!(v["metadata"]["task"], "multiclass");
    assert_eq!(
        v["metadata"]["input"]["feature_names"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(v["signed"], false);
}

#[test]
fn inspect_failures() {
    fails(
        &mle(&["inspect", "missing.mle"]),
        &["cannot load model missing.mle", "No such file"],
    );
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.mle");
    std::fs::write(&bad, b"PK\x03\x04 definitely a zip file, not a model, padded to be long enough for a header ............................................................").unwrap();
    fails(
        &mle(&["inspect", p(&bad)]),
        &["cannot load model", "bad.mle", "bad magic"],
    );
}

// ---------------------------------------------------------------- keygen, sign, verify

#[test]
fn keygen_sign_verify_round_trip_and_failures() {
    let dir = tempfile::tempdir().unwrap();
    let (sk, pk) = (dir.path().join("k.secret"), dir.path().join("k.pub"));
    let o = mle(&["keygen", "--secret-key", p(&sk), "--public-key", p(&pk)]);
    ok(&o);
    assert_eq!(std::fs::read_to_string(&pk).unwrap().trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&sk).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Refuses to overwrite a key.
    fails(
        &mle(&["keygen", "--secret-key", p(&sk), "--public-key", p(&pk)]),
        &["already exists (use --force to overwrite it)"],
    );

    // Unsigned: verify passes without a key, fails with one.
    let out = ok(&mle(&["verify", CANCER_MODEL]));
    assert!(out.contains("ok:") && out.contains("unsigned"), "{out}");
    fails(
        &mle(&["verify", CANCER_MODEL, "--public-key", p(&pk)]),
        &["failed verification", "not signed"],
    );

    // Sign into a new file, then verify with the right and a wrong key.
    let signed = dir.path().join("signed.mle");
    ok(&mle(&[
        "sign",
        CANCER_MODEL,
        "--secret-key",
        p(&sk),
        "-o",
        p(&signed),
    ]));
    let out = ok(&mle(&["verify", p(&signed), "--public-key", p(&pk)]));
    assert!(out.contains("signature valid"), "{out}");
    let (sk2, pk2) = (dir.path().join("o.secret"), dir.path().join("o.pub"));
    ok(&mle(&[
        "keygen",
        "--secret-key",
        p(&sk2),
        "--public-key",
        p(&pk2),
    ]));
    fails(
        &mle(&["verify", p(&signed), "--public-key", p(&pk2)]),
        &["invalid signature"],
    );
    // A signed model still scores, and scoring can require the signature.
    let scored = dir.path().join("s.parquet");
    ok(&mle(&[
        "score",
        "-m",
        p(&signed),
        CANCER_DATA,
        "-o",
        p(&scored),
        "--public-key",
        p(&pk),
    ]));
    fails(
        &mle(&[
            "score",
            "-m",
            CANCER_MODEL,
            CANCER_DATA,
            "-o",
            p(&scored),
            "--public-key",
            p(&pk),
        ]),
        &["not signed"],
    );
    // Tampering after signing.
    let mut bytes = std::fs::read(&signed).unwrap();
    let n = bytes.len();
    bytes[n - 70] ^= 1;
    let tampered = dir.path().join("tampered.mle");
    std::fs::write(&tampered, bytes).unwrap();
    fails(
        &mle(&["verify", p(&tampered), "--public-key", p(&pk)]),
        &["failed verification"],
    );

    // sign/verify failures: missing key, bad key, missing model.
    fails(
        &mle(&[
            "sign",
            CANCER_MODEL,
            "--secret-key",
            "nokey",
            "-o",
            p(&signed),
        ]),
        &["cannot read secret key nokey"],
    );
    let badkey = dir.path().join("bad.key");
    std::fs::write(&badkey, "xyz").unwrap();
    fails(
        &mle(&["verify", CANCER_MODEL, "--public-key", p(&badkey)]),
        &["cannot read public key", "bad key file"],
    );
    fails(
        &mle(&["sign", "missing.mle", "--secret-key", p(&sk)]),
        &["cannot read missing.mle"],
    );
    fails(
        &mle(&["verify", "missing.mle"]),
        &["missing.mle failed verification"],
    );
}

// ---------------------------------------------------------------- convert

#[test]
fn convert_xgboost_and_lightgbm_models() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mle");
    let o = ok(&mle(&[
        "convert",
        "datasets/models/breast_cancer.json",
        p(&out),
        "--from",
        "xgboost",
    ]));
    assert!(o.contains("converted") && o.contains("xgboost"), "{o}");
    // Same model as the shipped one: same predictions on the same data.
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    ok(&mle(&["score", "-m", p(&out), CANCER_DATA, "-o", p(&a)]));
    ok(&mle(&[
        "score",
        "-m",
        CANCER_MODEL,
        CANCER_DATA,
        "-o",
        p(&b),
    ]));
    assert_eq!(
        read_parquet(&a).column_by_name("probabilities"),
        read_parquet(&b).column_by_name("probabilities")
    );
    let lgb = dir.path().join("l.mle");
    ok(&mle(&[
        "convert",
        "datasets/models/iris.txt",
        p(&lgb),
        "--from",
        "lightgbm",
        "--compress",
    ]));
    let j: serde_json::Value =
        serde_json::from_str(&ok(&mle(&["inspect", "--json", p(&lgb)]))).unwrap();
    assert_eq!(j["compressed"], true);
}

#[test]
fn convert_failures() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mle");
    fails(
        &mle(&["convert", "missing.json", p(&out), "--from", "xgboost"]),
        &["cannot convert missing.json"],
    );
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, b"{\"not\": \"a model\"}").unwrap();
    fails(
        &mle(&["convert", p(&junk), p(&out), "--from", "xgboost"]),
        &["cannot convert", "junk.json"],
    );
    fails(
        &mle(&["convert", "missing.onnx", p(&out), "--from", "onnx"]),
        &["cannot convert", "missing.onnx"],
    );
    fails(
        &mle(&["convert", p(&junk), p(&out), "--from", "catboost"]),
        &["cannot convert", "junk.json"],
    );
    let o = mle(&["convert", "a", "b", "--from", "tensorflow"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("invalid value 'tensorflow'"),
        "{}",
        stderr(&o)
    );
}

// ---------------------------------------------------------------- bench

#[test]
fn bench_reports_latency_and_throughput() {
    let out = ok(&mle(&[
        "bench",
        "-m",
        CANCER_MODEL,
        "--rows",
        "2000",
        "--iterations",
        "200",
    ]));
    assert!(out.contains("latency (batch 1, 200 runs): p50"), "{out}");
    assert!(
        out.contains("p99") && out.contains("throughput (batch 2,000"),
        "{out}"
    );
    let out = ok(&mle(&[
        "bench",
        "-m",
        CANCER_MODEL,
        "--input",
        CANCER_DATA,
        "--iterations",
        "50",
    ]));
    assert!(out.contains("throughput (batch 569"), "{out}");
    fails(
        &mle(&["bench", "-m", "missing.mle"]),
        &["cannot load model missing.mle"],
    );
    fails(
        &mle(&[
            "bench",
            "-m",
            CANCER_MODEL,
            "--input",
            "datasets/iris.parquet",
        ]),
        &["does not have the model's features", "mean_radius"],
    );
}

#[test]
fn usage_errors_exit_2_without_panicking() {
    let o = mle(&["score"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--model"), "{}", stderr(&o));
    let o = mle(&["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = mle(&["--version"]);
    assert!(ok(&o).starts_with("mle "));
}
