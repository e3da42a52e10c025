//! Imports every model of `tests/fixtures/catboost` (CatBoost 1.2.10 JSON; `make.py` there)
//! and scores CatBoost's probe rows (raw strings for the categorical columns, NaN floats,
//! categories never seen in training) through `mle-exec`'s typed rows: identical labels,
//! probabilities and predictions within 1e-5 relative (1e-6 absolute near zero). Then the
//! refusals: what the importer cannot reproduce is a typed error naming it.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::assert_close;
use mle_exec::{Model, OutputData, Session, Value as Cell};
use mle_format::{ClassLabels, FeatureKind, WriteOptions};
use mle_import::ImportError;
use serde_json::Value;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catboost")
}

fn compile(bytes: &[u8], what: &str) -> Arc<Model> {
    let b = mle_import::import_catboost(bytes, what).unwrap_or_else(|e| panic!("{what}: {e}"));
    let bytes = b.to_bytes(&WriteOptions::default()).expect("to_bytes");
    Arc::new(Model::from_bytes(&bytes, what).unwrap_or_else(|e| panic!("{what}: compile: {e}")))
}

fn f64s(o: &OutputData) -> Vec<f64> {
    match o {
        OutputData::F64(v) => v.clone(),
        OutputData::F32(v) => v.iter().map(|&x| x as f64).collect(),
        OutputData::I64(v) => v.iter().map(|&x| x as f64).collect(),
        #[allow(unreachable_patterns)]
        _ => panic!("unexpected output type"),
    }
}

fn check(expected: &Path) {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(expected).unwrap()).expect("json");
    let file = dir().join(doc["model"].as_str().unwrap());
    let what = file.file_name().unwrap().to_string_lossy().into_owned();
    let m = compile(&std::fs::read(&file).unwrap(), &what);
    let meta = m.metadata().clone();
    assert_eq!(meta.framework, "catboost");
    let columns: Vec<&str> = doc["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(meta.input.feature_names, columns, "{what}: feature names");
    let has_cats = doc["rows"][0]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v.is_string() && v != "nan");
    if has_cats {
        let kinds: Vec<FeatureKind> = meta.input.features.iter().map(|f| f.kind.clone()).collect();
        assert!(kinds.contains(&FeatureKind::Category), "{what}: {kinds:?}");
    }
    let mut s = Session::new(m);
    let mut got: Vec<f64> = Vec::new();
    let mut labels: Vec<i64> = Vec::new();
    let classifier = doc["task"] == "classifier";
    for row in doc["rows"].as_array().unwrap() {
        let cells: Vec<Cell<'_>> = row
            .as_array()
            .unwrap()
            .iter()
            .map(|v| match v {
                Value::String(s) if s == "nan" => Cell::Num(f64::NAN),
                Value::String(s) => Cell::Str(s),
                v => Cell::Num(v.as_f64().unwrap()),
            })
            .collect();
        let out = s
            .predict_row_typed(&cells)
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        if classifier {
            got.extend(f64s(&out.get("probabilities").unwrap().data));
            labels.extend(
                f64s(&out.get("label").unwrap().data)
                    .iter()
                    .map(|&x| x as i64),
            );
        } else {
            got.extend(f64s(&out.get("prediction").unwrap().data));
        }
    }
    if classifier {
        let want: Vec<Vec<f64>> = doc["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect()
            })
            .collect();
        assert_close(&format!("{what} probabilities"), &got, &want);
        let classes = meta.output.class_labels.clone().expect("class labels");
        let names: Vec<String> = match classes {
            ClassLabels::Int(v) => v.iter().map(|c| c.to_string()).collect(),
            ClassLabels::Str(v) => v,
        };
        let want_classes: Vec<String> = doc["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string))
            .collect();
        assert_eq!(names, want_classes, "{what}: class labels");
        let got_labels: Vec<String> = labels.iter().map(|&i| names[i as usize].clone()).collect();
        let want_labels: Vec<String> = doc["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_string))
            .collect();
        assert_eq!(got_labels, want_labels, "{what}: labels");
    } else {
        let want: Vec<Vec<f64>> = vec![doc["prediction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()];
        assert_close(&format!("{what} prediction"), &got, &want);
    }
}

#[test]
fn every_fixture_matches_catboost() {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            p.to_str()?.ends_with(".expected.json").then_some(p)
        })
        .collect();
    v.sort();
    assert!(v.len() >= 12, "too few CatBoost fixtures");
    for p in v {
        check(&p);
    }
}

fn fixture(name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir().join(name)).unwrap()).unwrap()
}

fn import_doc(doc: &Value) -> Result<mle_format::ModelBuilder, ImportError> {
    mle_import::import_catboost(&serde_json::to_vec(doc).unwrap(), "m.json")
}

#[test]
fn what_cannot_be_reproduced_is_refused_by_name() {
    // A CTR over a feature combination.
    let mut doc = fixture("binary_ctr.json");
    let ctrs = doc["features_info"]["ctrs"].as_array_mut().unwrap();
    let extra =
        serde_json::json!({"cat_feature_index": 1, "combination_element": "cat_feature_value"});
    ctrs[0]["elements"].as_array_mut().unwrap().push(extra);
    let e = import_doc(&doc).err().expect("refused").to_string();
    assert!(
        e.contains("combination") && e.contains("max_ctr_complexity"),
        "{e}"
    );

    // Categorical splits without the category strings.
    let mut doc = fixture("binary_onehot.json");
    doc["features_info"]
        .as_object_mut()
        .unwrap()
        .remove("cat_features_hash");
    let e = import_doc(&doc).err().expect("refused");
    assert!(matches!(e, ImportError::UnsupportedModel { .. }), "{e}");
    assert!(e.to_string().contains("cat_features_hash"), "{e}");

    // Non-symmetric trees, text features, an unknown objective.
    let mut doc = fixture("regression.json");
    let trees = doc
        .as_object_mut()
        .unwrap()
        .remove("oblivious_trees")
        .unwrap();
    doc["trees"] = trees;
    let e = import_doc(&doc).err().expect("refused").to_string();
    assert!(e.contains("Depthwise"), "{e}");
    let mut doc = fixture("regression.json");
    doc["features_info"]["text_features"] = serde_json::json!([{"feature_index": 0}]);
    let e = import_doc(&doc).err().expect("refused").to_string();
    assert!(e.contains("text_features"), "{e}");
    let mut doc = fixture("regression.json");
    doc["model_info"]["params"]["loss_function"]["type"] = "Cox".into();
    let e = import_doc(&doc).err().expect("refused").to_string();
    assert!(e.contains("\"Cox\""), "{e}");
    // A mean-value CTR.
    let mut doc = fixture("binary_ctr.json");
    doc["features_info"]["ctrs"][0]["ctr_type"] = "FloatTargetMeanValue".into();
    let e = import_doc(&doc).err().expect("refused").to_string();
    assert!(e.contains("FloatTargetMeanValue"), "{e}");
}

#[test]
fn malformed_documents_are_typed_errors() {
    let doc = fixture("multiclass.json");
    // Truncated JSON.
    let bytes = serde_json::to_vec(&doc).unwrap();
    for cut in [0, 1, 100, bytes.len() / 2, bytes.len() - 1] {
        let e = mle_import::import_catboost(&bytes[..cut], "m.json")
            .err()
            .expect("refused");
        assert!(matches!(e, ImportError::Malformed { .. }), "{e}");
    }
    // Leaf values of the wrong count, a split index out of range, a depth beyond 16.
    let mut d = doc.clone();
    d["oblivious_trees"][0]["leaf_values"]
        .as_array_mut()
        .unwrap()
        .pop();
    let e = import_doc(&d).err().expect("refused").to_string();
    assert!(e.contains("oblivious_trees[0].leaf_values"), "{e}");
    let mut d = doc.clone();
    d["oblivious_trees"][0]["splits"][0]["split_index"] = 1_000_000.into();
    let e = import_doc(&d).err().expect("refused").to_string();
    assert!(
        e.contains("split_index") && e.contains("out of range"),
        "{e}"
    );
    let mut d = doc.clone();
    let s = d["oblivious_trees"][0]["splits"][0].clone();
    d["oblivious_trees"][0]["splits"] = Value::Array(vec![s; 40]);
    let e = import_doc(&d).err().expect("refused").to_string();
    assert!(e.contains("depth 40"), "{e}");
    // A column claimed twice.
    let mut d = doc;
    d["features_info"]["float_features"][1]["flat_feature_index"] = 0.into();
    let e = import_doc(&d).err().expect("refused").to_string();
    assert!(e.contains("appears twice"), "{e}");
}
