//! Unsupported models and damaged files: each is a typed error whose message names the
//! source, the field and the bound; no input panics.

mod common;

use common::fixtures_dir;
use mle_import::{
    detect_format, import_file, import_lightgbm, import_xgboost, ImportError, SourceFormat,
};

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixtures_dir().join(rel)).unwrap()
}

fn text(rel: &str) -> String {
    String::from_utf8(read(rel)).unwrap()
}

fn xgb_err(bytes: &[u8]) -> String {
    match import_xgboost(bytes, "model.json") {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn lgb_err(text: &str) -> String {
    match import_lightgbm(text, "model.txt") {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

/// Edits the JSON document of an XGBoost fixture.
fn xgb_edit(rel: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&read(rel)).unwrap();
    edit(&mut v);
    serde_json::to_vec(&v).unwrap()
}

fn first_tree(v: &mut serde_json::Value) -> &mut serde_json::Value {
    &mut v["learner"]["gradient_booster"]["model"]["trees"][0]
}

#[test]
fn unknown_xgboost_objective_is_unsupported_and_named() {
    let b = xgb_edit("xgboost/reg_squarederror.json", |v| {
        v["learner"]["objective"]["name"] = "reg:mystery".into();
    });
    let e = import_xgboost(&b, "model.json").err().unwrap();
    assert!(matches!(e, ImportError::UnsupportedModel { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(
        msg.starts_with("model.json: unsupported model: objective \"reg:mystery\""),
        "{msg}"
    );
    assert!(
        msg.contains("binary:logistic"),
        "lists what is supported: {msg}"
    );
}

#[test]
fn gblinear_is_unsupported_and_named() {
    let e = xgb_err(&read("xgboost/gblinear.json"));
    assert!(e.contains("unsupported model: booster \"gblinear\""), "{e}");
}

#[test]
fn unknown_lightgbm_objective_is_unsupported_and_named() {
    let t = text("lightgbm/regression.txt")
        .replace("objective=regression", "objective=cross_entropy_lambda");
    let e = lgb_err(&t);
    assert!(
        e.starts_with("model.txt: unsupported model: objective \"cross_entropy_lambda\""),
        "{e}"
    );
    let t = text("lightgbm/regression.txt")
        .replace("objective=regression", "objective=regression sqrt");
    assert!(lgb_err(&t).contains("reg_sqrt"));
}

#[test]
fn lightgbm_linear_trees_are_unsupported_and_named() {
    let e = lgb_err(&text("lightgbm/linear_tree.txt"));
    assert!(
        e.contains("unsupported model: linear trees (Tree=0 has is_linear=1 at line"),
        "{e}"
    );
}

#[test]
fn truncated_and_corrupt_json_are_malformed() {
    let b = read("xgboost/binary_logistic.json");
    let e = xgb_err(&b[..b.len() / 2]);
    assert!(
        e.starts_with("model.json: malformed XGBoost JSON: EOF while parsing"),
        "{e}"
    );
    let mut c = b.clone();
    let at = c.len() / 3;
    c[at] = b'#';
    let e = xgb_err(&c);
    assert!(e.starts_with("model.json: malformed XGBoost JSON:"), "{e}");
    assert!(e.contains("line 1 column"), "{e}");
    // Valid JSON, but not a model.
    let e = xgb_err(b"{\"foo\": 1}");
    assert_eq!(e, "model.json: learner: missing");
}

#[test]
fn truncated_ubjson_is_malformed_at_every_cut() {
    let b = read("xgboost/multi_softprob.ubj");
    for cut in (0..b.len()).step_by(13) {
        match import_xgboost(&b[..cut], "model.ubj") {
            Ok(_) => panic!("prefix of {cut} bytes imported"),
            Err(e) => {
                let m = e.to_string();
                assert!(m.starts_with("model.ubj: malformed"), "cut {cut}: {m}");
            }
        }
    }
    let e = xgb_err(&b[..b.len() - 1]);
    assert!(e.contains("malformed XGBoost UBJSON: at byte"), "{e}");
}

#[test]
fn out_of_range_child_index_is_named() {
    let b = xgb_edit("xgboost/reg_squarederror.json", |v| {
        first_tree(v)["left_children"][0] = 999.into();
    });
    let e = xgb_err(&b);
    assert!(
        e.contains("learner.gradient_booster.model.trees[0].left_children[0]: child index 999 out of range 0.."),
        "{e}"
    );
    let t = text("lightgbm/regression.txt");
    let bad = t.replacen("left_child=", "left_child=77 ", 1);
    // The list is now one longer than the internal node count: that is caught first.
    assert!(
        lgb_err(&bad).contains("Tree=0 left_child: "),
        "{}",
        lgb_err(&bad)
    );
    // Replace the first child by an out-of-range internal index, keeping the length.
    let line = t.lines().find(|l| l.starts_with("left_child=")).unwrap();
    let mut parts: Vec<String> = line["left_child=".len()..]
        .split(' ')
        .map(String::from)
        .collect();
    parts[0] = "77".into();
    let bad = t.replacen(line, &format!("left_child={}", parts.join(" ")), 1);
    let e = lgb_err(&bad);
    assert!(
        e.contains("Tree=0 left_child[0]: internal node 77 out of range 0.."),
        "{e}"
    );
    assert!(e.starts_with("model.txt: line "), "names the line: {e}");
    parts[0] = "-99".into();
    let bad = t.replacen(line, &format!("left_child={}", parts.join(" ")), 1);
    assert!(lgb_err(&bad).contains("leaf 98 (child -99) out of range 0.."));
}

#[test]
fn cycles_bad_features_and_targets_are_named() {
    let b = xgb_edit("xgboost/reg_squarederror.json", |v| {
        first_tree(v)["left_children"][1] = 0.into();
        first_tree(v)["right_children"][1] = 2.into();
    });
    assert!(xgb_err(&b).contains("reached twice"), "{}", xgb_err(&b));
    let b = xgb_edit("xgboost/reg_squarederror.json", |v| {
        first_tree(v)["split_indices"][0] = 1000.into();
    });
    assert!(xgb_err(&b).contains("split_indices[0]: feature 1000 out of range 0..10"));
    let b = xgb_edit("xgboost/multi_softprob.json", |v| {
        v["learner"]["gradient_booster"]["model"]["tree_info"][2] = 3.into();
    });
    assert!(xgb_err(&b).contains("tree_info[2]: output 3 out of range 0..3"));
    let b = xgb_edit("xgboost/reg_squarederror.json", |v| {
        first_tree(v)["split_conditions"]
            .as_array_mut()
            .unwrap()
            .pop();
    });
    assert!(
        xgb_err(&b).contains("split_conditions: "),
        "{}",
        xgb_err(&b)
    );
    let b = xgb_edit("xgboost/cat_regression.json", |v| {
        for t in v["learner"]["gradient_booster"]["model"]["trees"]
            .as_array_mut()
            .unwrap()
        {
            if !t["categories_sizes"].as_array().unwrap().is_empty() {
                t["categories_sizes"][0] = 100000.into();
                break;
            }
        }
    });
    assert!(
        xgb_err(&b).contains("of size 100000 exceeds the"),
        "{}",
        xgb_err(&b)
    );
}

#[test]
fn xgboost_base_score_is_checked() {
    let b = xgb_edit("xgboost/binary_logistic.json", |v| {
        v["learner"]["learner_model_param"]["base_score"] = "[1E0]".into();
    });
    assert!(xgb_err(&b).contains("base_score: 1 is not a probability in (0, 1)"));
    let b = xgb_edit("xgboost/binary_logistic.json", |v| {
        v["learner"]["learner_model_param"]["base_score"] = "[5E-1".into();
    });
    assert!(xgb_err(&b).contains("base_score: \"[5E-1\" is not a JSON array of numbers"));
    // The pre-2.1 plain form is accepted.
    let b = xgb_edit("xgboost/binary_logistic.json", |v| {
        v["learner"]["learner_model_param"]["base_score"] = "5E-1".into();
    });
    assert!(import_xgboost(&b, "m").is_ok());
}

#[test]
fn lightgbm_fields_are_checked_with_lines() {
    let t = text("lightgbm/regression.txt");
    let cut = t.find("end of trees").unwrap();
    assert!(lgb_err(&t[..cut]).contains("no \"end of trees\" line: the model is truncated"));
    let cut = t.find("Tree=1").unwrap();
    let half = &t[..cut + 40];
    assert!(lgb_err(half).contains("malformed") || lgb_err(half).contains("missing"));
    let bad = t.replacen("decision_type=", "decision_type=12 ", 1);
    assert!(lgb_err(&bad).contains("decision_type"));
    let line = t.lines().find(|l| l.starts_with("decision_type=")).unwrap();
    let n = line.split(' ').count();
    let bad = t.replacen(
        line,
        &format!("decision_type={}", vec!["12"; n].join(" ")),
        1,
    );
    assert!(
        lgb_err(&bad).contains("missing type 3 is undefined"),
        "{}",
        lgb_err(&bad)
    );
    let bad = t.replacen("leaf_value=", "leaf_value=abc ", 1);
    let e = lgb_err(&bad);
    assert!(
        e.contains("leaf_value[0]: \"abc\" is not a valid number"),
        "{e}"
    );
    let bad = t.replacen("max_feature_idx=9", "max_feature_idx=99999999999", 1);
    assert!(lgb_err(&bad).contains("max_feature_idx"));
    let bad = t.replacen("split_feature=", "split_feature=50 ", 1);
    assert!(lgb_err(&bad).contains("split_feature"));
    assert!(lgb_err("").contains("empty"));
    assert!(lgb_err("hello\n").contains("line 1 is \"hello\", expected \"tree\""));

    let c = text("lightgbm/cat_regression.txt");
    let line = c
        .lines()
        .find(|l| l.starts_with("cat_boundaries="))
        .unwrap();
    let bad = c.replacen(line, "cat_boundaries=0 999999", 1);
    assert!(
        lgb_err(&bad).contains("cat_boundaries"),
        "{}",
        lgb_err(&bad)
    );
}

#[test]
fn formats_are_detected() {
    assert_eq!(
        detect_format(&read("xgboost/rank_ndcg.json")),
        Some(SourceFormat::XgboostJson)
    );
    assert_eq!(
        detect_format(&read("xgboost/rank_ndcg.ubj")),
        Some(SourceFormat::XgboostUbjson)
    );
    assert_eq!(
        detect_format(&read("lightgbm/lambdarank.txt")),
        Some(SourceFormat::LightgbmText)
    );
    assert_eq!(detect_format(b"PAR1...."), None);
    assert_eq!(detect_format(b""), None);
    let e = import_file(&fixtures_dir().join("xgboost/missing.json"), None)
        .err()
        .unwrap();
    assert!(matches!(e, ImportError::Io { .. }), "{e:?}");
    let p = std::env::temp_dir().join(format!("mle-import-garbage-{}.bin", std::process::id()));
    std::fs::write(&p, b"\x00\x01garbage").unwrap();
    let e = import_file(&p, None).err().unwrap().to_string();
    std::fs::remove_file(&p).ok();
    assert!(
        e.ends_with("not an XGBoost JSON/UBJSON model or a LightGBM text model"),
        "{e}"
    );
}

/// Deterministic byte mutations of real model files: every result is a model or an error.
#[test]
fn mutated_models_never_panic() {
    let mut state = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for rel in [
        "xgboost/cat_binary.ubj",
        "xgboost/multi_parallel.json",
        "lightgbm/cat_binary.txt",
    ] {
        let orig = read(rel);
        let mut outcomes = [0usize; 2];
        for _ in 0..150 {
            let mut b = orig.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % b.len() as u64) as usize;
                b[i] = (next() & 0xff) as u8;
            }
            let r = if rel.ends_with(".txt") {
                match std::str::from_utf8(&b) {
                    Ok(t) => import_lightgbm(t, "m").map(|_| ()),
                    Err(_) => continue,
                }
            } else {
                import_xgboost(&b, "m").map(|_| ())
            };
            outcomes[usize::from(r.is_err())] += 1;
        }
        eprintln!("{rel}: {} imported, {} errors", outcomes[0], outcomes[1]);
    }
}

#[test]
fn vector_leaf_trees_are_unsupported_and_named() {
    let e = xgb_err(&read("xgboost/vector_leaf.json"));
    assert!(
        e.contains("unsupported model: learner.gradient_booster.model.trees[0]: vector-leaf trees"),
        "{e}"
    );
    assert!(e.contains("size_leaf_vector = 2"), "{e}");
}
