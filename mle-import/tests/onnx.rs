//! Imports every model of `tests/fixtures/onnx` (converted by skl2onnx, onnxmltools and
//! `torch.onnx.export`; `make.py` there) and compares `mle-exec`'s outputs with onnxruntime's
//! on the same float32 rows: identical labels, probabilities and predictions within 1e-5
//! relative (1e-6 absolute near zero). Fixtures with `columns` (one graph input per column,
//! strings among them) are scored as typed rows.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::assert_close;
use mle_exec::{Batch, Model, OutputData, RunOptions, Session};
use mle_format::{ClassLabels, FeatureKind, Task, WriteOptions};
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn num(v: &Value) -> f64 {
    match v {
        Value::String(s) if s == "nan" => f64::NAN,
        Value::String(s) if s == "inf" => f64::INFINITY,
        Value::String(s) if s == "-inf" => f64::NEG_INFINITY,
        v => v.as_f64().expect("number"),
    }
}

fn matrix(v: &Value) -> Vec<Vec<f64>> {
    v.as_array()
        .expect("matrix")
        .iter()
        .map(|r| r.as_array().expect("row").iter().map(num).collect())
        .collect()
}

fn fixtures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("fixtures dir")
        .filter_map(|e| {
            let p = e.ok()?.path();
            p.to_str()?.ends_with(".expected.json").then_some(p)
        })
        .collect();
    v.sort();
    assert!(v.len() >= 20, "too few ONNX fixtures");
    v
}

fn check(expected: &Path) {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).expect("json");
    let model = dir().join(doc["model"].as_str().unwrap());
    let what = model.file_name().unwrap().to_string_lossy().into_owned();
    let builder =
        mle_import::onnx::import_file(&model).unwrap_or_else(|e| panic!("{what}: import: {e}"));
    let bytes = builder
        .to_bytes(&WriteOptions::default())
        .expect("to_bytes");
    let m = Arc::new(
        Model::from_bytes(&bytes, &what).unwrap_or_else(|e| panic!("{what}: compile: {e}")),
    );
    let meta = m.metadata().clone();
    assert_eq!(meta.framework, "onnx");
    if doc.get("columns").is_some() {
        return check_typed(&what, m, &doc);
    }
    let rows = matrix(&doc["rows"]);
    let n = rows.len();
    let f = doc["n_features"].as_u64().unwrap() as usize;
    assert_eq!(meta.n_features(), f, "{what}");
    let flat: Vec<f32> = rows.iter().flatten().map(|&x| x as f32).collect();
    let batch = Batch::from_row_major_f32(&flat, n, f).unwrap();
    let mut s = Session::new(m);
    let out = s
        .predict_batch(&batch, RunOptions::default())
        .unwrap_or_else(|e| panic!("{what}: run: {e}"));
    match doc["task"].as_str().unwrap() {
        "regression" => {
            assert_eq!(meta.task, Task::Regression, "{what}");
            let p = out.get("prediction").expect("prediction");
            let OutputData::F64(p) = &p.data else {
                panic!("{what}: prediction is not f64")
            };
            assert_close(&what, p, &matrix(&doc["prediction"]));
        }
        task => {
            let want_task = if task == "binary" {
                Task::Binary
            } else {
                Task::Multiclass
            };
            assert_eq!(meta.task, want_task, "{what}");
            let p = out.get("probabilities").expect("probabilities");
            let OutputData::F64(p) = &p.data else {
                panic!("{what}: probabilities are not f64")
            };
            assert_close(&what, p, &matrix(&doc["probabilities"]));
            let l = out.get("label").expect("label");
            let OutputData::I64(l) = &l.data else {
                panic!("{what}: label is not i64")
            };
            let labels = meta.output.class_labels.clone().expect("class labels");
            let got: Vec<Value> = l
                .iter()
                .map(|&i| match &labels {
                    ClassLabels::Int(v) => Value::from(v[i as usize]),
                    ClassLabels::Str(v) => Value::from(v[i as usize].clone()),
                })
                .collect();
            let want = doc["label"].as_array().unwrap();
            assert_eq!(&got, want, "{what}: labels");
            eprintln!("{what}: {n} labels identical");
        }
    }
}

/// A fixture with one graph input per column (`columns`: name and ONNX type), scored row by
/// row with strings as strings: the features are named after the inputs, string and int64
/// inputs read by a `OneHotEncoder` are categories, floats are floats.
fn check_typed(what: &str, m: Arc<Model>, doc: &Value) {
    let meta = m.metadata().clone();
    let columns: Vec<(String, String)> = doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c[0].as_str().unwrap().to_string(),
                c[1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let kinds: Vec<(String, FeatureKind)> = meta
        .input
        .features
        .iter()
        .map(|f| (f.name.clone(), f.kind.clone()))
        .collect();
    let want_kinds: Vec<(String, FeatureKind)> = columns
        .iter()
        .map(|(c, t)| {
            let k = if t == "float" {
                FeatureKind::Float
            } else {
                FeatureKind::Category
            };
            (c.clone(), k)
        })
        .collect();
    assert_eq!(kinds, want_kinds, "{what}: input features");
    let classifier = doc["task"] != "regression";
    let mut s = Session::new(m);
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    for row in doc["rows"].as_array().unwrap() {
        let cells: Vec<mle_exec::Value<'_>> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::String(x) => mle_exec::Value::Str(x),
                v => mle_exec::Value::Num(num(v)),
            })
            .collect();
        let out = s
            .predict_row_typed(&cells)
            .unwrap_or_else(|e| panic!("{what}: run {row}: {e}"));
        let key = if classifier {
            "probabilities"
        } else {
            "prediction"
        };
        let OutputData::F64(p) = &out.get(key).expect(key).data else {
            panic!("{what}: {key} is not f64")
        };
        values.extend_from_slice(p);
        if classifier {
            let OutputData::I64(l) = &out.get("label").expect("label").data else {
                panic!("{what}: label is not i64")
            };
            labels.extend_from_slice(l);
        }
    }
    if !classifier {
        assert_eq!(meta.task, Task::Regression, "{what}");
        assert_close(what, &values, &matrix(&doc["prediction"]));
        eprintln!("{what}: {} typed rows", values.len());
        return;
    }
    assert_close(what, &values, &matrix(&doc["probabilities"]));
    let Some(ClassLabels::Int(classes)) = meta.output.class_labels.clone() else {
        panic!("{what}: integer class labels expected")
    };
    let got: Vec<Value> = labels
        .iter()
        .map(|&i| Value::from(classes[i as usize]))
        .collect();
    assert_eq!(&got, doc["label"].as_array().unwrap(), "{what}: labels");
    eprintln!("{what}: {} typed rows, labels identical", labels.len());
}

#[test]
fn every_fixture_matches_onnxruntime() {
    for e in fixtures() {
        check(&e);
    }
}

// ----- hostile and unsupported models ---------------------------------------------------------

use mle_import::onnx::proto::*;
use mle_import::onnx::{import, OnnxOptions};
use mle_import::ImportError;
use prost::Message;

fn vi(name: &str, elem: i32, dims: &[Option<i64>]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.into(),
        r#type: Some(TypeProto {
            tensor_type: Some(TypeProtoTensor {
                elem_type: elem,
                shape: Some(TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| Dimension {
                            dim_value: *d,
                            dim_param: d.is_none().then(|| "N".to_string()),
                        })
                        .collect(),
                }),
            }),
        }),
    }
}

fn model(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> ModelProto {
    ModelProto {
        ir_version: 8,
        opset_import: vec![
            OperatorSetIdProto {
                domain: String::new(),
                version: 17,
            },
            OperatorSetIdProto {
                domain: "ai.onnx.ml".into(),
                version: 3,
            },
        ],
        producer_name: "test".into(),
        graph: Some(GraphProto {
            node: nodes,
            name: "g".into(),
            initializer: inits,
            input: vec![vi("x", data_type::FLOAT, &[None, Some(2)])],
            output: vec![vi("y", data_type::FLOAT, &[None, Some(3)])],
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(op: &str, name: &str, inputs: &[&str], outputs: &[&str]) -> NodeProto {
    NodeProto {
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        name: name.into(),
        op_type: op.into(),
        ..Default::default()
    }
}

fn weight(name: &str, dims: &[i64], raw: Vec<u8>) -> TensorProto {
    TensorProto {
        dims: dims.to_vec(),
        data_type: data_type::FLOAT,
        name: name.into(),
        raw_data: raw,
        ..Default::default()
    }
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn dense_model() -> ModelProto {
    model(
        vec![
            node("MatMul", "mm", &["x", "w"], &["h"]),
            node("Relu", "act", &["h"], &["y"]),
        ],
        vec![weight(
            "w",
            &[2, 3],
            f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
        )],
    )
}

fn err(m: &ModelProto, opts: &OnnxOptions) -> ImportError {
    match import(&m.encode_to_vec(), opts) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn a_hand_built_dense_model_imports_and_runs() {
    let b = import(
        &dense_model().encode_to_vec(),
        &OnnxOptions::named("dense.onnx"),
    )
    .unwrap();
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    let m = Arc::new(Model::from_bytes(&bytes, "dense").unwrap());
    let mut s = Session::new(m);
    let out = s
        .predict_batch(
            &Batch::from_row_major_f32(&[1.0, -1.0], 1, 2).unwrap(),
            RunOptions::default(),
        )
        .unwrap();
    let OutputData::F64(p) = &out.get("prediction").unwrap().data else {
        panic!()
    };
    // [1, -1] · [[1, 2, 3], [4, 5, 6]] = [-3, -3, -3] → relu → 0
    assert_eq!(p, &[0.0, 0.0, 0.0]);
}

#[test]
fn truncated_and_corrupted_protobufs_are_malformed() {
    let bytes = std::fs::read(dir().join("rf_binary.onnx")).unwrap();
    for cut in [1, 7, bytes.len() / 3, bytes.len() / 2, bytes.len() - 1] {
        let e = import(&bytes[..cut], &OnnxOptions::named("cut.onnx"));
        assert!(e.is_err(), "a model cut at {cut} bytes imported");
    }
    let e = import(b"\x0a\xff\xff\xff\xff\x0f", &OnnxOptions::named("bad.onnx"))
        .err()
        .unwrap();
    assert!(matches!(e, ImportError::Malformed { .. }), "{e}");
    assert!(e.to_string().contains("bad.onnx"), "{e}");
    // Random bytes never panic.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    for len in 0..200 {
        let v: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = import(&v, &OnnxOptions::default());
    }
}

#[test]
fn an_unknown_operator_is_named_with_its_node_and_opset() {
    let mut m = dense_model();
    m.graph.as_mut().unwrap().node[1] = node("Softsign", "my_act", &["h"], &["y"]);
    let e = err(&m, &OnnxOptions::named("u.onnx"));
    let ImportError::UnsupportedOp {
        op,
        node: at,
        opset,
        ..
    } = &e
    else {
        panic!("{e}")
    };
    assert_eq!(
        (op.as_str(), at.as_str(), *opset),
        ("Softsign", "my_act", 17)
    );
    let msg = e.to_string();
    assert!(
        msg.contains("Softsign") && msg.contains("my_act") && msg.contains("17"),
        "{msg}"
    );

    let mut m = dense_model();
    let mut svm = node("SVMClassifier", "svm", &["x"], &["l", "y"]);
    svm.domain = "ai.onnx.ml".into();
    m.graph.as_mut().unwrap().node = vec![svm];
    let msg = err(&m, &OnnxOptions::default()).to_string();
    assert!(
        msg.contains("ai.onnx.ml:SVMClassifier") && msg.contains("opset 3"),
        "{msg}"
    );
}

#[test]
fn dims_that_disagree_with_raw_data_are_refused() {
    for (dims, raw) in [
        (vec![2, 3], f32_bytes(&[1.0; 5])),
        (vec![2, 4], f32_bytes(&[1.0; 6])),
        (vec![i64::MAX, 2], f32_bytes(&[1.0; 6])),
        (vec![1 << 40, 1 << 40], vec![]),
        (vec![-1, 6], f32_bytes(&[1.0; 6])),
    ] {
        let mut m = dense_model();
        m.graph.as_mut().unwrap().initializer = vec![weight("w", &dims, raw)];
        let e = err(&m, &OnnxOptions::named("dims.onnx"));
        let ImportError::InvalidField { field, .. } = &e else {
            panic!("{e}")
        };
        assert!(field.contains("initializer[0]"), "{e}");
    }
    // float_data shorter than the dims.
    let mut m = dense_model();
    let w = TensorProto {
        dims: vec![2, 3],
        data_type: data_type::FLOAT,
        name: "w".into(),
        float_data: vec![1.0; 4],
        ..Default::default()
    };
    m.graph.as_mut().unwrap().initializer = vec![w];
    assert!(err(&m, &OnnxOptions::default())
        .to_string()
        .contains("float_data"));
}

fn external(location: &str) -> ModelProto {
    let mut m = dense_model();
    let w = TensorProto {
        dims: vec![2, 3],
        data_type: data_type::FLOAT,
        name: "w".into(),
        data_location: 1,
        external_data: vec![StringStringEntryProto {
            key: "location".into(),
            value: location.into(),
        }],
        ..Default::default()
    };
    m.graph.as_mut().unwrap().initializer = vec![w];
    m
}

#[test]
fn external_data_stays_inside_the_model_directory() {
    let tmp = std::env::temp_dir().join(format!("mle-onnx-ext-{}", std::process::id()));
    let inner = tmp.join("model");
    std::fs::create_dir_all(&inner).unwrap();
    std::fs::write(tmp.join("outside.bin"), f32_bytes(&[1.0; 6])).unwrap();
    std::fs::write(
        inner.join("w.bin"),
        f32_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]),
    )
    .unwrap();
    let opts = OnnxOptions {
        name: "ext.onnx".into(),
        model_dir: Some(inner.clone()),
    };
    // Inside: read.
    import(&external("w.bin").encode_to_vec(), &opts).expect("external data inside the directory");
    // Through the file entry point too.
    std::fs::write(inner.join("m.onnx"), external("w.bin").encode_to_vec()).unwrap();
    mle_import::onnx::import_file(&inner.join("m.onnx")).expect("import_file with external data");
    // `..`, absolute paths, and bytes-only imports: refused.
    let abs = tmp.join("outside.bin").display().to_string();
    for loc in [
        "../outside.bin",
        "sub/../../outside.bin",
        abs.as_str(),
        "/etc/passwd",
    ] {
        let msg = err(&external(loc), &opts).to_string();
        assert!(
            msg.contains("relative path inside the model's directory"),
            "{loc}: {msg}"
        );
    }
    let msg = err(&external("w.bin"), &OnnxOptions::default()).to_string();
    assert!(msg.contains("needs the model's directory"), "{msg}");
    // A symlink out of the directory.
    #[cfg(unix)]
    {
        let _ = std::os::unix::fs::symlink(tmp.join("outside.bin"), inner.join("link.bin"));
        let msg = err(&external("link.bin"), &opts).to_string();
        assert!(msg.contains("outside the model's directory"), "{msg}");
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn cycles_and_undefined_values_are_refused() {
    let mut m = dense_model();
    m.graph.as_mut().unwrap().node = vec![
        node("Relu", "a", &["z"], &["h"]),
        node("Relu", "b", &["h"], &["z"]),
    ];
    let msg = err(&m, &OnnxOptions::default()).to_string();
    assert!(msg.contains("topological order"), "{msg}");
}

#[test]
fn tree_ensemble_modes_and_bounds() {
    // One stump on feature 0; each mode's true branch is leaf 1 (weight 1), false leaf 2 (2).
    let stump = |mode: &str, feature: i64, truenode: i64| {
        let mut n = node("TreeEnsembleRegressor", "trees", &["x"], &["y"]);
        n.domain = "ai.onnx.ml".into();
        let ints = |name: &str, v: Vec<i64>| AttributeProto {
            name: name.into(),
            r#type: attr_type::INTS,
            ints: v,
            ..Default::default()
        };
        let floats = |name: &str, v: Vec<f32>| AttributeProto {
            name: name.into(),
            r#type: attr_type::FLOATS,
            floats: v,
            ..Default::default()
        };
        n.attribute = vec![
            ints("nodes_treeids", vec![0, 0, 0]),
            ints("nodes_nodeids", vec![0, 1, 2]),
            ints("nodes_featureids", vec![feature, 0, 0]),
            ints("nodes_truenodeids", vec![truenode, 0, 0]),
            ints("nodes_falsenodeids", vec![2, 0, 0]),
            floats("nodes_values", vec![0.5, 0.0, 0.0]),
            AttributeProto {
                name: "nodes_modes".into(),
                r#type: attr_type::STRINGS,
                strings: vec![mode.into(), b"LEAF".to_vec(), b"LEAF".to_vec()],
                ..Default::default()
            },
            ints("target_treeids", vec![0, 0]),
            ints("target_nodeids", vec![1, 2]),
            ints("target_ids", vec![0, 0]),
            floats("target_weights", vec![1.0, 2.0]),
        ];
        let mut m = model(vec![n], vec![]);
        m.graph.as_mut().unwrap().output = vec![vi("y", data_type::FLOAT, &[None, Some(1)])];
        m
    };
    let run = |m: &ModelProto, x: f32| -> f64 {
        let b = import(&m.encode_to_vec(), &OnnxOptions::default()).unwrap();
        let model = Arc::new(
            Model::from_bytes(&b.to_bytes(&WriteOptions::default()).unwrap(), "t").unwrap(),
        );
        let mut s = Session::new(model);
        let out = s
            .predict_batch(
                &Batch::from_row_major_f32(&[x, 0.0], 1, 2).unwrap(),
                RunOptions::default(),
            )
            .unwrap();
        let OutputData::F64(p) = &out.get("prediction").unwrap().data else {
            panic!()
        };
        p[0]
    };
    for (mode, below, at, above) in [
        ("BRANCH_LEQ", 1.0, 1.0, 2.0),
        ("BRANCH_LT", 1.0, 2.0, 2.0),
        ("BRANCH_GTE", 2.0, 1.0, 1.0),
        ("BRANCH_GT", 2.0, 2.0, 1.0),
    ] {
        let m = stump(mode, 0, 1);
        assert_eq!(run(&m, 0.25), below, "{mode} below");
        assert_eq!(run(&m, 0.5), at, "{mode} at");
        assert_eq!(run(&m, 0.75), above, "{mode} above");
        // NaN goes to the false branch (missing_value_tracks_true unset).
        assert_eq!(run(&m, f32::NAN), 2.0, "{mode} NaN");
    }
    for mode in ["BRANCH_EQ", "BRANCH_NEQ"] {
        let e = err(&stump(mode, 0, 1), &OnnxOptions::default());
        assert!(
            matches!(e, ImportError::UnsupportedOp { .. }) && e.to_string().contains(mode),
            "{e}"
        );
    }
    let e = err(&stump("BRANCH_LEQ", 7, 1), &OnnxOptions::default()).to_string();
    assert!(
        e.contains("nodes_featureids[0]") && e.contains("outside 0..2"),
        "{e}"
    );
    let e = err(&stump("BRANCH_LEQ", 0, 9), &OnnxOptions::default()).to_string();
    assert!(e.contains("nodes_truenodeids[0]"), "{e}");
    let e = err(&stump("BRANCH_LEQ", 0, 0), &OnnxOptions::default()).to_string();
    assert!(e.contains("reached twice"), "{e}");
}

#[test]
fn shapes_that_overflow_or_explode_are_refused() {
    // Reshape to dimensions whose product overflows.
    let shape = TensorProto {
        dims: vec![3],
        data_type: data_type::INT64,
        name: "s".into(),
        int64_data: vec![-1, 1 << 40, 1 << 40],
        ..Default::default()
    };
    let mut m = dense_model();
    m.graph.as_mut().unwrap().node = vec![node("Reshape", "r", &["x", "s"], &["y"])];
    m.graph.as_mut().unwrap().initializer = vec![shape];
    assert!(import(&m.encode_to_vec(), &OnnxOptions::default()).is_err());
    // Concat doubling the width 40 times stops at the per-row bound.
    let mut nodes = Vec::new();
    let mut prev = "x".to_string();
    for k in 0..40 {
        let out = format!("c{k}");
        let mut n = node("Concat", &format!("cat{k}"), &[&prev, &prev], &[&out]);
        n.attribute = vec![AttributeProto {
            name: "axis".into(),
            r#type: attr_type::INT,
            i: 1,
            ..Default::default()
        }];
        nodes.push(n);
        prev = out;
    }
    nodes.push(node("Identity", "out", &[&prev], &["y"]));
    let e = err(&model(nodes, vec![]), &OnnxOptions::default());
    assert!(
        matches!(e, ImportError::UnsupportedOp { .. })
            && e.to_string().contains("elements per row"),
        "{e}"
    );
}

// ----- typed inputs: several graph inputs, strings, OneHotEncoder ------------------------------

fn strs_attr(name: &str, v: &[&str]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::STRINGS,
        strings: v.iter().map(|s| s.as_bytes().to_vec()).collect(),
        ..Default::default()
    }
}

fn int_attr(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INT,
        i,
        ..Default::default()
    }
}

fn ml(mut n: NodeProto, attrs: Vec<AttributeProto>) -> NodeProto {
    n.domain = "ai.onnx.ml".into();
    n.attribute = attrs;
    n
}

/// `city` (string) and `x` (float) inputs; `city` one-hot encoded (`zeros`), concatenated
/// with `x`, through a `Concat` + `Reshape` as skl2onnx writes them, into `y = [N, 4]`.
fn typed_model(zeros: i64, extra: Vec<NodeProto>, extra_inputs: Vec<ValueInfoProto>) -> ModelProto {
    let mut m = model(
        [
            vec![
                ml(
                    node("OneHotEncoder", "ohe", &["city"], &["oh"]),
                    vec![
                        strs_attr("cats_strings", &["paris", "rome", "oslo"]),
                        int_attr("zeros", zeros),
                    ],
                ),
                node("Reshape", "flat", &["oh", "shape"], &["oh2"]),
                {
                    let mut c = node("Concat", "cat", &["oh2", "x"], &["y"]);
                    c.attribute = vec![int_attr("axis", 1)];
                    c
                },
            ],
            extra,
        ]
        .concat(),
        vec![TensorProto {
            dims: vec![2],
            data_type: data_type::INT64,
            name: "shape".into(),
            int64_data: vec![-1, 3],
            ..Default::default()
        }],
    );
    let g = m.graph.as_mut().unwrap();
    g.input = [
        vec![
            vi("city", data_type::STRING, &[None, Some(1)]),
            vi("x", data_type::FLOAT, &[None, Some(1)]),
        ],
        extra_inputs,
    ]
    .concat();
    g.output = vec![vi("y", data_type::FLOAT, &[None, Some(4)])];
    m
}

fn run_typed(b: mle_format::ModelBuilder, row: &[mle_exec::Value<'_>]) -> Result<Vec<f64>, String> {
    let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
    let m = Arc::new(Model::from_bytes(&bytes, "typed.mle").unwrap());
    let mut s = Session::new(m);
    let out = s.predict_row_typed(row).map_err(|e| e.to_string())?;
    match &out.get("prediction").expect("prediction").data {
        OutputData::F64(v) => Ok(v.clone()),
        _ => panic!("prediction is not f64"),
    }
}

#[test]
fn string_inputs_are_one_hot_encoded_as_onnxruntime() {
    use mle_exec::Value as V;
    let mut b = import(
        &typed_model(1, vec![], vec![]).encode_to_vec(),
        &OnnxOptions::named("t.onnx"),
    )
    .expect("import");
    let meta = b.metadata_mut().clone();
    assert_eq!(meta.input.feature_names, ["city", "x"]);
    let kinds: Vec<FeatureKind> = meta.input.features.iter().map(|f| f.kind.clone()).collect();
    assert_eq!(kinds, [FeatureKind::Category, FeatureKind::Float]);
    let b2 = |m: &ModelProto| import(&m.encode_to_vec(), &OnnxOptions::named("t.onnx")).unwrap();
    let m = typed_model(1, vec![], vec![]);
    assert_eq!(
        run_typed(b2(&m), &[V::Str("rome"), V::Num(2.5)]).unwrap(),
        [0.0, 1.0, 0.0, 2.5]
    );
    assert_eq!(
        run_typed(b2(&m), &[V::Str("oslo"), V::Num(-1.0)]).unwrap(),
        [0.0, 0.0, 1.0, -1.0]
    );
    // zeros = 1: an unseen category (and a NULL, which onnxruntime cannot be given) is a row
    // of zeros.
    assert_eq!(
        run_typed(b2(&m), &[V::Str("Paris"), V::Num(1.0)]).unwrap(),
        [0.0, 0.0, 0.0, 1.0]
    );
    assert_eq!(
        run_typed(b2(&m), &[V::Missing, V::Num(1.0)]).unwrap(),
        [0.0, 0.0, 0.0, 1.0]
    );
    // The float input is read at float precision (onnxruntime's float tensor).
    let got = run_typed(b2(&m), &[V::Str("paris"), V::Num(0.1)]).unwrap();
    assert_eq!(got, [1.0, 0.0, 0.0, f64::from(0.1f32)]);
    // zeros = 0: onnxruntime raises on an unseen category; so does the Lookup.
    let m0 = typed_model(0, vec![], vec![]);
    assert_eq!(
        run_typed(b2(&m0), &[V::Str("paris"), V::Num(1.0)]).unwrap(),
        [1.0, 0.0, 0.0, 1.0]
    );
    let e = run_typed(b2(&m0), &[V::Str("lima"), V::Num(1.0)]).unwrap_err();
    assert!(e.contains("city") && e.contains("lima"), "{e}");
}

#[test]
fn int64_inputs_are_categories_or_numbers() {
    use mle_exec::Value as V;
    // grade (int64) one-hot over cats_int64s, and n (int64) cast to float; y = [N, 3 + 1].
    let mut m = model(
        vec![
            ml(
                node("OneHotEncoder", "ohe", &["grade"], &["oh"]),
                vec![
                    AttributeProto {
                        name: "cats_int64s".into(),
                        r#type: attr_type::INTS,
                        ints: vec![3, 1, 7],
                        ..Default::default()
                    },
                    int_attr("zeros", 1),
                ],
            ),
            node("Reshape", "flat", &["oh", "shape"], &["oh2"]),
            {
                let mut c = node("Cast", "cast", &["n"], &["nf"]);
                c.attribute = vec![int_attr("to", i64::from(data_type::FLOAT))];
                c
            },
            {
                let mut c = node("Concat", "cat", &["oh2", "nf"], &["y"]);
                c.attribute = vec![int_attr("axis", 1)];
                c
            },
        ],
        vec![TensorProto {
            dims: vec![2],
            data_type: data_type::INT64,
            name: "shape".into(),
            int64_data: vec![-1, 3],
            ..Default::default()
        }],
    );
    let g = m.graph.as_mut().unwrap();
    g.input = vec![
        vi("grade", data_type::INT64, &[None, Some(1)]),
        vi("n", data_type::INT64, &[None, Some(1)]),
    ];
    g.output = vec![vi("y", data_type::FLOAT, &[None, Some(4)])];
    let b = || import(&m.encode_to_vec(), &OnnxOptions::named("i.onnx")).unwrap();
    let kinds: Vec<FeatureKind> = b()
        .metadata_mut()
        .input
        .features
        .iter()
        .map(|f| f.kind.clone())
        .collect();
    assert_eq!(kinds, [FeatureKind::Category, FeatureKind::Integer]);
    assert_eq!(
        run_typed(b(), &[V::Num(7.0), V::Num(5.0)]).unwrap(),
        [0.0, 0.0, 1.0, 5.0]
    );
    assert_eq!(
        run_typed(b(), &[V::Num(3.0), V::Num(-2.0)]).unwrap(),
        [1.0, 0.0, 0.0, -2.0]
    );
    assert_eq!(
        run_typed(b(), &[V::Num(2.0), V::Num(0.0)]).unwrap(),
        [0.0, 0.0, 0.0, 0.0]
    );
}

#[test]
fn what_cannot_be_expressed_on_typed_inputs_is_refused_by_name() {
    let msg = |m: &ModelProto| err(m, &OnnxOptions::named("r.onnx")).to_string();
    // A string input read by an operator other than an encoder.
    let mut m = typed_model(1, vec![], vec![]);
    let g = m.graph.as_mut().unwrap();
    g.node.push(node("Relu", "act", &["city"], &["z"]));
    let e = msg(&m);
    assert!(
        e.contains("Relu") && e.contains("act") && e.contains("string graph input"),
        "{e}"
    );
    // OneHotEncoder over a float value: onnxruntime truncates it to int64.
    let mut m = typed_model(1, vec![], vec![]);
    m.graph.as_mut().unwrap().node.push(ml(
        node("OneHotEncoder", "ohe_x", &["x"], &["z"]),
        vec![AttributeProto {
            name: "cats_int64s".into(),
            r#type: attr_type::INTS,
            ints: vec![0, 1],
            ..Default::default()
        }],
    ));
    let e = msg(&m);
    assert!(
        e.contains("ai.onnx.ml:OneHotEncoder") && e.contains("ohe_x") && e.contains("opset 3"),
        "{e}"
    );
    // Two encoders of one input, one raising on unknown categories and one not.
    let mut m = typed_model(1, vec![], vec![]);
    m.graph.as_mut().unwrap().node.push(ml(
        node("OneHotEncoder", "ohe2", &["city"], &["z"]),
        vec![strs_attr("cats_strings", &["paris"]), int_attr("zeros", 0)],
    ));
    let e = msg(&m);
    assert!(e.contains("ohe2") && e.contains("\"city\""), "{e}");
    // A string input no encoder reads.
    let m = typed_model(
        1,
        vec![],
        vec![vi("unused", data_type::STRING, &[None, Some(1)])],
    );
    let e = msg(&m);
    assert!(
        e.contains("\"unused\"") && e.contains("not read by an encoder"),
        "{e}"
    );
    // Other element types.
    let m = typed_model(
        1,
        vec![],
        vec![vi("flag", data_type::BOOL, &[None, Some(1)])],
    );
    let e = msg(&m);
    assert!(e.contains("\"flag\"") && e.contains("bool"), "{e}");
    // LabelEncoder with string outputs, CategoryMapper int64 -> string and LabelEncoder of
    // opset 1 are refused, named with node and opset; the encoders need a string/int64 input.
    let le = |attrs: Vec<AttributeProto>, input: &str| {
        let mut m = typed_model(1, vec![], vec![]);
        m.graph
            .as_mut()
            .unwrap()
            .node
            .push(ml(node("LabelEncoder", "enc", &[input], &["z"]), attrs));
        m
    };
    let strings_out = le(
        vec![
            strs_attr("keys_strings", &["paris"]),
            strs_attr("values_strings", &["fr"]),
        ],
        "city",
    );
    let over_float = le(
        vec![
            strs_attr("keys_strings", &["paris"]),
            AttributeProto {
                name: "values_int64s".into(),
                r#type: attr_type::INTS,
                ints: vec![4],
                ..Default::default()
            },
        ],
        "x",
    );
    let mut opset1 = le(vec![strs_attr("classes_strings", &["paris"])], "city");
    opset1.opset_import[1].version = 1;
    for (m, want) in [
        (&strings_out, "values_strings"),
        (&over_float, "string or int64 graph input"),
        (&opset1, "opset 1"),
    ] {
        let e = err(m, &OnnxOptions::named("r.onnx"));
        assert!(matches!(e, ImportError::UnsupportedOp { .. }), "{e}");
        let e = e.to_string();
        assert!(
            e.contains("ai.onnx.ml:LabelEncoder") && e.contains("enc") && e.contains(want),
            "{e}"
        );
    }
    // One-hot encoding a TreeEnsemble's set-membership splits and the other operators
    // without an executor op stay refused.
    let mut m = typed_model(1, vec![], vec![]);
    m.graph
        .as_mut()
        .unwrap()
        .node
        .push(ml(node("DictVectorizer", "dv", &["city"], &["z"]), vec![]));
    let e = msg(&m);
    assert!(
        e.contains("ai.onnx.ml:DictVectorizer") && e.contains("dv"),
        "{e}"
    );
}

#[test]
fn label_encoders_map_strings_to_numbers() {
    use mle_exec::Value as V;
    // city -> LabelEncoder (int64) -> Cast(float); x; y = [N, 2].
    let mut m = model(
        vec![
            ml(
                node("LabelEncoder", "le", &["city"], &["code"]),
                vec![
                    strs_attr("keys_strings", &["paris", "rome"]),
                    AttributeProto {
                        name: "values_int64s".into(),
                        r#type: attr_type::INTS,
                        ints: vec![10, 20],
                        ..Default::default()
                    },
                    int_attr("default_int64", -7),
                ],
            ),
            {
                let mut c = node("Cast", "cast", &["code"], &["codef"]);
                c.attribute = vec![int_attr("to", i64::from(data_type::FLOAT))];
                c
            },
            {
                let mut c = node("Concat", "cat", &["codef", "x"], &["y"]);
                c.attribute = vec![int_attr("axis", 1)];
                c
            },
        ],
        vec![],
    );
    let g = m.graph.as_mut().unwrap();
    g.input = vec![
        vi("city", data_type::STRING, &[None, Some(1)]),
        vi("x", data_type::FLOAT, &[None, Some(1)]),
    ];
    g.output = vec![vi("y", data_type::FLOAT, &[None, Some(2)])];
    let b = || import(&m.encode_to_vec(), &OnnxOptions::named("le.onnx")).unwrap();
    assert_eq!(
        run_typed(b(), &[V::Str("rome"), V::Num(1.0)]).unwrap(),
        [20.0, 1.0]
    );
    assert_eq!(
        run_typed(b(), &[V::Str("oslo"), V::Num(1.0)]).unwrap(),
        [-7.0, 1.0]
    );
    // Without the Cast, the int64 value cannot reach a float operator.
    let mut m2 = m.clone();
    let g = m2.graph.as_mut().unwrap();
    g.node.remove(1);
    g.node[1].input[0] = "code".into();
    let e = err(&m2, &OnnxOptions::named("le.onnx")).to_string();
    assert!(e.contains("Concat") && e.contains("int64"), "{e}");
}

/// Found by fuzzing: a NaN in `base_values` was written as a JSON `null` the reader refuses;
/// it is now a typed error naming the node and the attribute.
#[test]
fn non_finite_float_attributes_are_refused() {
    let bytes = std::fs::read(dir().join("gb_binary.onnx")).unwrap();
    let mut m = ModelProto::decode(bytes.as_slice()).unwrap();
    let g = m.graph.as_mut().unwrap();
    let n = g
        .node
        .iter_mut()
        .find(|n| n.op_type == "TreeEnsembleClassifier")
        .expect("a tree classifier");
    let a = n
        .attribute
        .iter_mut()
        .find(|a| a.name == "base_values")
        .expect("base_values");
    a.floats = vec![f32::NAN; a.floats.len()];
    let e = err(&m, &OnnxOptions::named("nan.onnx"));
    assert!(matches!(e, ImportError::InvalidField { .. }), "{e}");
    let e = e.to_string();
    assert!(e.contains("base_scores") && e.contains("NaN"), "{e}");
}
