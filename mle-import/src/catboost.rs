//! CatBoost JSON models (`model.save_model("m.json", format="json", pool=...)`).
//!
//! CatBoost's default trees are *oblivious*: every node of one level tests the same split, and
//! a depth-`d` tree has `2^d` leaves indexed by the split results (`bit k` = the result of the
//! `k`-th split, `1` when the split holds). Each tree is expanded into a complete binary tree
//! of the `TreeEnsemble` op (left = the split does not hold).
//!
//! The fields that decide a prediction:
//!
//! - `features_info.float_features[]`: `feature_index` (among the float features),
//!   `flat_feature_index` (the column), `borders`, `nan_value_treatment`. A float split holds
//!   when `float(x) > border` (borders are floats: compared at f32 precision); NaN makes it
//!   hold under `AsTrue` (`nan_mode = "Max"`) and fail under `AsFalse` / `AsIs`.
//! - `features_info.categorical_features[]`: `feature_index` (among the categorical
//!   features), `flat_feature_index`, and `values` (the hashes of the one-hot encoded
//!   categories). A category is known by CatBoost's hash of its string (a `u32`);
//!   `features_info.cat_features_hash[]` (`{hash, value}`, written when `save_model` is given
//!   a pool) maps the hashes back to the strings, which become the feature's vocabulary (a
//!   `Lookup` in front of the trees; a string outside it is a category CatBoost never saw).
//!   A one-hot split holds when the value's hash equals the split's `value`.
//! - `features_info.ctrs[]` and `ctr_data`: CTR features (target statistics of a category:
//!   `Borders`, `Buckets`, `Counter`, `FeatureFreq`). A CTR of one categorical feature is a
//!   function of the category, so its split (`ctr > border`) is a set of categories: the
//!   categories whose CTR value passes the border, with a category absent from the CTR table
//!   (or outside the vocabulary) taking the value of empty counts. The table is keyed by
//!   `CalcHash(0, (i64) hash)` (`CalcHash(a, b) = M · (a + M · b)`, `M = 0x4906ba494954cb65`,
//!   wrapping); values are computed in f32 as CatBoost does:
//!   `((good + prior_numerator) / (total + prior_denomerator) + shift) · scale`.
//! - Split indices (`splits[].split_index`) number the binary features in CatBoost's order:
//!   every float feature's borders, then every one-hot feature's values, then every CTR's
//!   borders.
//! - `oblivious_trees[].leaf_values` (`2^d · dimension`, leaf-major), `scale_and_bias`
//!   (`raw = scale · Σ leaves + bias`), `model_info.params.loss_function.type` (the
//!   objective) and `model_info.class_params.class_names`.
//!
//! Refused (typed errors naming them): non-symmetric trees (`grow_policy` Depthwise /
//! Lossguide), text and embedding features, CTRs over feature combinations or binarized
//! features, mean-value CTRs, a categorical split without `cat_features_hash`, and objectives
//! without a known prediction transform.

use std::collections::{HashMap, HashSet};

use mle_format::tree::{flags, Aggregate, CategoricalRule, Comparison, Members, Precision};
use mle_format::{Attr, ClassLabels, DType, FeatureKind, FeatureSpec, Node, Task};
use serde_json::Value;

use crate::ensemble::{self, Ensemble, GraphSpec, LocalNode, Post, TreeInfo};
use crate::error::ImportError;
use mle_format::ModelBuilder;

/// Deepest oblivious tree accepted (CatBoost's own limit).
pub const MAX_DEPTH: usize = 16;

/// The multiplier of CatBoost's `CalcHash`.
const HASH_MULT: u64 = 0x4906_ba49_4954_cb65;

/// CatBoost's `CalcHash(a, b)`: the hash of a projection extended by one value.
pub fn calc_hash(a: u64, b: u64) -> u64 {
    HASH_MULT.wrapping_mul(a.wrapping_add(HASH_MULT.wrapping_mul(b)))
}

/// The CTR-table key of a category of a one-feature projection: `CalcHash(0, (i64)(i32) h)`.
pub fn ctr_key(hash: u32) -> u64 {
    calc_hash(0, hash as i32 as i64 as u64)
}

type R<T> = Result<T, ImportError>;

struct Cx<'a> {
    name: &'a str,
}

impl Cx<'_> {
    fn invalid(&self, field: impl Into<String>, detail: impl Into<String>) -> ImportError {
        ImportError::InvalidField {
            name: self.name.to_string(),
            field: field.into(),
            detail: detail.into(),
        }
    }

    fn unsupported(&self, detail: impl Into<String>) -> ImportError {
        ImportError::UnsupportedModel {
            name: self.name.to_string(),
            detail: detail.into(),
        }
    }

    fn obj<'v>(&self, v: &'v Value, field: &str) -> R<&'v serde_json::Map<String, Value>> {
        v.as_object()
            .ok_or_else(|| self.invalid(field, "expected an object"))
    }

    fn arr<'v>(&self, v: Option<&'v Value>, field: &str) -> R<&'v [Value]> {
        match v {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(self.invalid(field, "expected an array")),
        }
    }

    fn uint(&self, v: Option<&Value>, field: &str, bound: u64) -> R<u64> {
        let x = v
            .and_then(Value::as_u64)
            .ok_or_else(|| self.invalid(field, "expected a non-negative integer"))?;
        if x >= bound {
            return Err(self.invalid(field, format!("{x} is out of range (< {bound})")));
        }
        Ok(x)
    }

    fn num(&self, v: Option<&Value>, field: &str) -> R<f64> {
        let x = v
            .and_then(Value::as_f64)
            .ok_or_else(|| self.invalid(field, "expected a number"))?;
        if !x.is_finite() {
            return Err(self.invalid(field, format!("{x} is not finite")));
        }
        Ok(x)
    }

    fn str<'v>(&self, v: Option<&'v Value>, field: &str) -> R<&'v str> {
        v.and_then(Value::as_str)
            .ok_or_else(|| self.invalid(field, "expected a string"))
    }
}

/// A float feature as the trees see it.
struct FloatFeature {
    column: usize,
    borders: Vec<f64>,
    /// NaN makes every split on this feature hold (`AsTrue`).
    nan_true: bool,
}

/// A categorical feature.
struct CatFeature {
    column: usize,
    one_hot: Vec<u32>,
}

/// A CTR feature of one categorical feature.
struct Ctr {
    /// Index among the categorical features.
    cat: usize,
    borders: Vec<f64>,
    /// The CTR value of each vocabulary entry, and of an unknown category.
    values: Vec<f32>,
    unknown: f32,
}

/// One binary feature (a `split_index`).
enum Split {
    Float { feature: usize, border: f64 },
    OneHot { cat: usize, hash: u32 },
    Ctr { ctr: usize, border: f64 },
}

/// Imports a CatBoost JSON model. `name` names the source in error messages.
pub fn import_json(bytes: &[u8], name: &str) -> R<ModelBuilder> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| ImportError::Malformed {
        name: name.to_string(),
        format: "CatBoost JSON",
        detail: e.to_string(),
    })?;
    import_value(&doc, name)
}

/// Imports a parsed CatBoost JSON model.
pub fn import_value(doc: &Value, name: &str) -> R<ModelBuilder> {
    let cx = Cx { name };
    let root = cx.obj(doc, "$")?;
    if root.contains_key("trees") && !root.contains_key("oblivious_trees") {
        return Err(cx.unsupported(
            "non-symmetric trees (grow_policy Depthwise or Lossguide); only oblivious trees \
             (grow_policy SymmetricTree) are supported",
        ));
    }
    let info = cx.obj(
        root.get("features_info")
            .ok_or_else(|| cx.invalid("features_info", "missing"))?,
        "features_info",
    )?;
    for kind in ["text_features", "embedding_features"] {
        if !cx
            .arr(info.get(kind), &format!("features_info.{kind}"))?
            .is_empty()
        {
            return Err(cx.unsupported(format!(
                "features_info.{kind}: text and embedding features are not supported"
            )));
        }
    }

    // Float features, by feature_index.
    let floats_json = cx.arr(info.get("float_features"), "features_info.float_features")?;
    let cats_json = cx.arr(
        info.get("categorical_features"),
        "features_info.categorical_features",
    )?;
    let n_columns = floats_json.len() + cats_json.len();
    let mut names: Vec<Option<String>> = vec![None; n_columns];
    let mut kinds: Vec<bool> = vec![false; n_columns]; // true: categorical
    let mut floats: Vec<Option<FloatFeature>> = (0..floats_json.len()).map(|_| None).collect();
    for (i, f) in floats_json.iter().enumerate() {
        let field = format!("features_info.float_features[{i}]");
        let o = cx.obj(f, &field)?;
        let idx = cx.uint(
            o.get("feature_index"),
            &format!("{field}.feature_index"),
            floats_json.len() as u64,
        )? as usize;
        let column = cx.uint(
            o.get("flat_feature_index"),
            &format!("{field}.flat_feature_index"),
            n_columns as u64,
        )? as usize;
        let mut borders = Vec::new();
        for (k, b) in cx
            .arr(o.get("borders"), &format!("{field}.borders"))?
            .iter()
            .enumerate()
        {
            borders.push(cx.num(Some(b), &format!("{field}.borders[{k}]"))?);
        }
        let nan_true = match o.get("nan_value_treatment").and_then(Value::as_str) {
            None | Some("AsIs") | Some("AsFalse") => false,
            Some("AsTrue") => true,
            Some(other) => {
                return Err(cx.unsupported(format!(
                    "{field}.nan_value_treatment {other:?} (known: AsIs, AsFalse, AsTrue)"
                )))
            }
        };
        set_column(&cx, &mut names, &mut kinds, column, o, false, &field)?;
        match floats.get_mut(idx) {
            Some(slot @ None) => {
                *slot = Some(FloatFeature {
                    column,
                    borders,
                    nan_true,
                })
            }
            _ => {
                return Err(cx.invalid(
                    format!("{field}.feature_index"),
                    format!("{idx} appears twice"),
                ))
            }
        }
    }
    let floats: Vec<FloatFeature> = floats.into_iter().flatten().collect();

    let mut cats: Vec<Option<CatFeature>> = (0..cats_json.len()).map(|_| None).collect();
    for (i, f) in cats_json.iter().enumerate() {
        let field = format!("features_info.categorical_features[{i}]");
        let o = cx.obj(f, &field)?;
        let idx = cx.uint(
            o.get("feature_index"),
            &format!("{field}.feature_index"),
            cats_json.len() as u64,
        )? as usize;
        let column = cx.uint(
            o.get("flat_feature_index"),
            &format!("{field}.flat_feature_index"),
            n_columns as u64,
        )? as usize;
        let mut one_hot = Vec::new();
        for (k, v) in cx
            .arr(o.get("values"), &format!("{field}.values"))?
            .iter()
            .enumerate()
        {
            let h = v
                .as_i64()
                .and_then(|h| i32::try_from(h).ok())
                .ok_or_else(|| {
                    cx.invalid(format!("{field}.values[{k}]"), "expected a 32-bit hash")
                })?;
            one_hot.push(h as u32);
        }
        set_column(&cx, &mut names, &mut kinds, column, o, true, &field)?;
        match cats.get_mut(idx) {
            Some(slot @ None) => *slot = Some(CatFeature { column, one_hot }),
            _ => {
                return Err(cx.invalid(
                    format!("{field}.feature_index"),
                    format!("{idx} appears twice"),
                ))
            }
        }
    }
    let cats: Vec<CatFeature> = cats.into_iter().flatten().collect();
    let feature_names: Vec<String> = names
        .into_iter()
        .enumerate()
        .map(|(i, n)| n.unwrap_or_else(|| format!("f{i}")))
        .collect();
    {
        let mut seen = HashSet::new();
        if let Some(dup) = feature_names.iter().find(|n| !seen.insert(n.as_str())) {
            return Err(cx.invalid(
                "features_info",
                format!("feature name {dup:?} appears twice"),
            ));
        }
    }

    // The category strings, by hash.
    let hashes = cx.arr(
        info.get("cat_features_hash"),
        "features_info.cat_features_hash",
    )?;
    let mut vocab: Vec<String> = Vec::new();
    let mut vocab_hash: Vec<u32> = Vec::new();
    {
        let mut seen = HashSet::new();
        for (i, e) in hashes.iter().enumerate() {
            let field = format!("features_info.cat_features_hash[{i}]");
            let o = cx.obj(e, &field)?;
            let h = cx.uint(o.get("hash"), &format!("{field}.hash"), 1 << 32)? as u32;
            let v = cx.str(o.get("value"), &format!("{field}.value"))?;
            if seen.insert(v) {
                vocab.push(v.to_string());
                vocab_hash.push(h);
            }
        }
    }

    // CTRs.
    let ctrs_json = cx.arr(info.get("ctrs"), "features_info.ctrs")?;
    let ctr_data = match root.get("ctr_data") {
        None | Some(Value::Null) => None,
        Some(v) => Some(cx.obj(v, "ctr_data")?),
    };
    let mut ctrs = Vec::new();
    for (i, c) in ctrs_json.iter().enumerate() {
        ctrs.push(read_ctr(&cx, c, i, cats.len(), ctr_data, &vocab_hash)?);
    }

    // Binary features in CatBoost's order.
    let mut splits = Vec::new();
    for (f, ff) in floats.iter().enumerate() {
        for &border in &ff.borders {
            splits.push(Split::Float { feature: f, border });
        }
    }
    for (c, cf) in cats.iter().enumerate() {
        for &hash in &cf.one_hot {
            splits.push(Split::OneHot { cat: c, hash });
        }
    }
    for (k, ctr) in ctrs.iter().enumerate() {
        for &border in &ctr.borders {
            splits.push(Split::Ctr { ctr: k, border });
        }
    }

    // Objective and outputs.
    let model_info = match root.get("model_info") {
        Some(v) => Some(cx.obj(v, "model_info")?),
        None => None,
    };
    let loss = model_info
        .and_then(|m| m.get("params"))
        .and_then(|p| p.get("loss_function"))
        .and_then(|l| l.get("type"))
        .and_then(Value::as_str)
        .ok_or_else(|| cx.invalid("model_info.params.loss_function.type", "missing"))?;
    let (scale, biases) = read_scale_and_bias(&cx, root.get("scale_and_bias"))?;
    let dimension = biases.len();
    let (task, post) = objective(&cx, loss, dimension)?;
    let class_labels = if task.is_classifier() {
        Some(read_class_names(
            &cx,
            model_info.and_then(|m| m.get("class_params")),
            if dimension == 1 { 2 } else { dimension },
        )?)
    } else {
        None
    };

    // Trees.
    let trees = cx.arr(root.get("oblivious_trees"), "oblivious_trees")?;
    let mut ens = Ensemble::default();
    let mut used_cats = vec![false; cats.len()];
    // Category sets of categorical and CTR splits, built once per split index.
    let mut sets: HashMap<usize, (Vec<u32>, bool)> = HashMap::new();
    let n_words = vocab.len().div_ceil(32).max(1);
    for (t, tree) in trees.iter().enumerate() {
        let field = format!("oblivious_trees[{t}]");
        let o = cx.obj(tree, &field)?;
        let tsplits = cx.arr(o.get("splits"), &format!("{field}.splits"))?;
        let depth = tsplits.len();
        if depth > MAX_DEPTH {
            return Err(cx.invalid(
                format!("{field}.splits"),
                format!("depth {depth} exceeds {MAX_DEPTH}"),
            ));
        }
        let n_leaves = 1usize << depth;
        let leaves = cx.arr(o.get("leaf_values"), &format!("{field}.leaf_values"))?;
        if leaves.len() != n_leaves * dimension {
            return Err(cx.invalid(
                format!("{field}.leaf_values"),
                format!(
                    "{} values, expected 2^{depth} leaves x {dimension} dimensions = {}",
                    leaves.len(),
                    n_leaves * dimension
                ),
            ));
        }
        let mut values = Vec::with_capacity(leaves.len());
        for (k, v) in leaves.iter().enumerate() {
            values.push(cx.num(Some(v), &format!("{field}.leaf_values[{k}]"))?);
        }
        let weights = cx.arr(o.get("leaf_weights"), &format!("{field}.leaf_weights"))?;
        let mut leaf_weights = Vec::new();
        if weights.len() == n_leaves {
            for (k, v) in weights.iter().enumerate() {
                let w = cx.num(Some(v), &format!("{field}.leaf_weights[{k}]"))?;
                if w < 0.0 {
                    return Err(cx.invalid(format!("{field}.leaf_weights[{k}]"), "negative"));
                }
                leaf_weights.push(w);
            }
        }
        // The split of each level.
        let mut level_nodes = Vec::with_capacity(depth);
        for (k, s) in tsplits.iter().enumerate() {
            let sf = format!("{field}.splits[{k}]");
            let so = cx.obj(s, &sf)?;
            let idx = cx.uint(
                so.get("split_index"),
                &format!("{sf}.split_index"),
                splits.len() as u64,
            )? as usize;
            let split = splits
                .get(idx)
                .ok_or_else(|| cx.invalid(format!("{sf}.split_index"), "out of range"))?;
            let node = match split {
                Split::Float { feature, border } => {
                    let ff = floats
                        .get(*feature)
                        .ok_or_else(|| cx.invalid(&sf, "float feature out of range"))?;
                    let fl = if ff.nan_true { 0 } else { flags::MISSING_LEFT };
                    (ff.column as i32, *border, fl, Vec::new())
                }
                Split::OneHot { cat, hash } => {
                    let cf = cats
                        .get(*cat)
                        .ok_or_else(|| cx.invalid(&sf, "categorical feature out of range"))?;
                    if let Some(u) = used_cats.get_mut(*cat) {
                        *u = true;
                    }
                    let (bits, _) = sets.entry(idx).or_insert_with(|| {
                        let mut bits = vec![0u32; n_words];
                        for (code, h) in vocab_hash.iter().enumerate() {
                            if h == hash {
                                set_bit(&mut bits, code);
                            }
                        }
                        (bits, false)
                    });
                    (
                        cf.column as i32,
                        0.0,
                        flags::CATEGORICAL | flags::MISSING_LEFT,
                        bits.clone(),
                    )
                }
                Split::Ctr { ctr, border } => {
                    let c = ctrs
                        .get(*ctr)
                        .ok_or_else(|| cx.invalid(&sf, "CTR out of range"))?;
                    let cf = cats
                        .get(c.cat)
                        .ok_or_else(|| cx.invalid(&sf, "categorical feature out of range"))?;
                    if let Some(u) = used_cats.get_mut(c.cat) {
                        *u = true;
                    }
                    let border32 = *border as f32;
                    let (bits, unknown_holds) = sets.entry(idx).or_insert_with(|| {
                        let mut bits = vec![0u32; n_words];
                        for (code, v) in c.values.iter().enumerate() {
                            if *v > border32 {
                                set_bit(&mut bits, code);
                            }
                        }
                        (bits, c.unknown > border32)
                    });
                    let fl = if *unknown_holds {
                        flags::CATEGORICAL
                    } else {
                        flags::CATEGORICAL | flags::MISSING_LEFT
                    };
                    (cf.column as i32, 0.0, fl, bits.clone())
                }
            };
            level_nodes.push(node);
        }
        for target in 0..dimension {
            let nodes = oblivious_nodes(&level_nodes, |leaf| {
                values
                    .get(leaf * dimension + target)
                    .copied()
                    .unwrap_or(0.0)
            });
            let covers = (leaf_weights.len() == n_leaves).then(|| covers(&leaf_weights, depth));
            let ids = leaf_ids(depth);
            ens.push_tree_with(
                &nodes,
                TreeInfo {
                    covers: covers.as_deref(),
                    ids: Some(&ids),
                },
                0,
                target as u32,
                scale,
                name,
                &field,
            )?;
        }
    }
    if vocab.is_empty() && used_cats.iter().any(|&u| u) {
        return Err(cx.unsupported(
            "categorical splits without features_info.cat_features_hash (the category \
             strings): save the model with save_model(..., format=\"json\", pool=<the training \
             pool>)",
        ));
    }

    let version = model_info
        .and_then(|m| m.get("catboost_version_info"))
        .and_then(Value::as_str)
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.trim().strip_prefix("Branch: tags/v"))
        })
        .unwrap_or("")
        .to_string();
    let spec = GraphSpec {
        framework: "catboost",
        framework_version: version,
        model_type: format!("CatBoost {loss}"),
        task,
        feature_names: feature_names.clone(),
        input_dtype: DType::F32,
        n_targets: dimension,
        comparison: Comparison::Le,
        input_precision: Precision::F32,
        aggregate: Aggregate::Sum,
        categorical_members: Members::Right,
        categorical_rule: CategoricalRule::LightGbm,
        base_scores: biases,
        post,
    };
    let cat_columns: Vec<usize> = cats.iter().map(|c| c.column).collect();
    let mut b = ensemble::build_with(ens, spec, |b| {
        if cat_columns.is_empty() || vocab.is_empty() {
            // (Categorical features no split reads stay numeric.)
            return Ok(None);
        }
        let cref = b.add_vocabulary("categories", &vocab)?;
        let features = feature_names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                if kinds.get(i).copied().unwrap_or(false) {
                    FeatureSpec::category(n.clone(), cref.clone())
                } else {
                    FeatureSpec::new(n.clone(), FeatureKind::Float)
                }
            })
            .collect();
        b.set_input_features(features)?;
        let (bytes_t, offsets_t) = match &cref {
            mle_format::CategoriesRef::String { bytes, offsets } => {
                (bytes.clone(), offsets.clone())
            }
            mle_format::CategoriesRef::Integer { values } => (values.clone(), values.clone()),
        };
        let mut prev = "X".to_string();
        for (k, &col) in cat_columns.iter().enumerate() {
            let out = format!("codes{k}");
            b.push_node(
                Node::new(format!("lookup{k}"), "Lookup", &[&prev], &[&out])
                    .with("feature", Attr::Int(col as i64))
                    .with("bytes", Attr::Tensor(bytes_t.clone()))
                    .with("offsets", Attr::Tensor(offsets_t.clone()))
                    .with("unknown", Attr::Str("missing".into())),
            );
            prev = out;
        }
        Ok(Some(prev))
    })?;
    if let Some(labels) = class_labels {
        b.metadata_mut().output.class_labels = Some(labels);
    }
    Ok(b)
}

fn set_bit(bits: &mut [u32], code: usize) {
    if let Some(w) = bits.get_mut(code / 32) {
        *w |= 1 << (code % 32);
    }
}

/// Records a column's name and kind; a column given twice is an error.
fn set_column(
    cx: &Cx<'_>,
    names: &mut [Option<String>],
    kinds: &mut [bool],
    column: usize,
    o: &serde_json::Map<String, Value>,
    categorical: bool,
    field: &str,
) -> R<()> {
    let name = o
        .get("feature_id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("f{column}"));
    match names.get_mut(column) {
        Some(slot @ None) => *slot = Some(name),
        _ => {
            return Err(cx.invalid(
                format!("{field}.flat_feature_index"),
                format!("column {column} appears twice"),
            ))
        }
    }
    if let Some(k) = kinds.get_mut(column) {
        *k = categorical;
    }
    Ok(())
}

/// The nodes of an oblivious tree in heap order: node `k < 2^d - 1` tests the split of its
/// level (left: the split fails, bit 0); leaf `p` (heap position among the leaves, the first
/// level's bit most significant) holds `leaf(catboost index)`, the index with the first
/// level's bit least significant.
fn oblivious_nodes(
    levels: &[(i32, f64, u8, Vec<u32>)],
    leaf: impl Fn(usize) -> f64,
) -> Vec<LocalNode> {
    let depth = levels.len();
    let n_internal = (1usize << depth) - 1;
    let mut nodes = Vec::with_capacity(2 * n_internal + 1);
    for k in 0..n_internal {
        let level = (usize::BITS - (k + 1).leading_zeros() - 1) as usize;
        let (feature, threshold, fl, cats) =
            levels
                .get(level)
                .cloned()
                .unwrap_or((0, 0.0, 0, Vec::new()));
        nodes.push(LocalNode::Split {
            feature,
            threshold,
            left: 2 * k + 1,
            right: 2 * k + 2,
            flags: fl,
            cats,
        });
    }
    for p in 0..=n_internal {
        nodes.push(LocalNode::Leaf(leaf(reverse_bits(p, depth))));
    }
    nodes
}

fn reverse_bits(p: usize, depth: usize) -> usize {
    (0..depth).fold(0, |acc, k| acc | (((p >> (depth - 1 - k)) & 1) << k))
}

/// Each node's framework leaf index (CatBoost's `calc_leaf_indexes`), 0 on internal nodes.
fn leaf_ids(depth: usize) -> Vec<i32> {
    let n_internal = (1usize << depth) - 1;
    let mut ids = vec![0i32; n_internal];
    ids.extend((0..=n_internal).map(|p| reverse_bits(p, depth) as i32));
    ids
}

/// Covers in heap order from the leaf weights (by CatBoost leaf index).
fn covers(weights: &[f64], depth: usize) -> Vec<f64> {
    let n_internal = (1usize << depth) - 1;
    let mut c = vec![0.0; 2 * n_internal + 1];
    for p in 0..=n_internal {
        if let (Some(slot), Some(w)) = (
            c.get_mut(n_internal + p),
            weights.get(reverse_bits(p, depth)),
        ) {
            *slot = *w;
        }
    }
    for k in (0..n_internal).rev() {
        let s = c.get(2 * k + 1).copied().unwrap_or(0.0) + c.get(2 * k + 2).copied().unwrap_or(0.0);
        if let Some(slot) = c.get_mut(k) {
            *slot = s;
        }
    }
    c
}

fn read_scale_and_bias(cx: &Cx<'_>, v: Option<&Value>) -> R<(f64, Vec<f64>)> {
    let Some(v) = v else {
        return Ok((1.0, vec![0.0]));
    };
    let a = cx.arr(Some(v), "scale_and_bias")?;
    let scale = cx.num(a.first(), "scale_and_bias[0]")?;
    let biases = match a.get(1) {
        Some(Value::Array(b)) => {
            let mut out = Vec::new();
            for (k, x) in b.iter().enumerate() {
                out.push(cx.num(Some(x), &format!("scale_and_bias[1][{k}]"))?);
            }
            out
        }
        Some(x) => vec![cx.num(Some(x), "scale_and_bias[1]")?],
        None => vec![0.0],
    };
    if biases.is_empty() || biases.len() > 1 << 16 {
        return Err(cx.invalid(
            "scale_and_bias[1]",
            format!(
                "{} biases (expected 1..=65536, one per dimension)",
                biases.len()
            ),
        ));
    }
    Ok((scale, biases))
}

/// The task and the transform of `predict` / `predict_proba` for an objective.
fn objective(cx: &Cx<'_>, loss: &str, dimension: usize) -> R<(Task, Post)> {
    let regression = [
        "RMSE",
        "MAE",
        "Quantile",
        "MAPE",
        "Huber",
        "Lq",
        "LogLinQuantile",
        "Expectile",
        "LogCosh",
        "SMAPE",
        "MultiQuantile",
        "MultiRMSE",
        "SurvivalAft",
        "YetiRank",
        "YetiRankPairwise",
        "PairLogit",
        "PairLogitPairwise",
        "QueryRMSE",
        "QuerySoftMax",
        "QueryCrossEntropy",
        "StochasticRank",
        "StochasticFilter",
        "LambdaMart",
    ];
    let r = match loss {
        "Logloss" | "CrossEntropy" if dimension == 1 => (Task::Binary, Post::BinarySigmoid),
        "MultiClass" if dimension >= 2 => (Task::Multiclass, Post::Softmax),
        "MultiClassOneVsAll" if dimension >= 2 => (Task::Multiclass, Post::OvaSigmoid),
        "Poisson" | "Tweedie" if dimension == 1 => (Task::Regression, Post::Exp),
        l if regression.contains(&l) => (Task::Regression, Post::Identity),
        _ => {
            return Err(cx.unsupported(format!(
                "loss function {loss:?} with {dimension} dimension(s): its prediction \
                 transform is not known"
            )))
        }
    };
    Ok(r)
}

fn read_class_names(cx: &Cx<'_>, params: Option<&Value>, n_classes: usize) -> R<ClassLabels> {
    let names = cx.arr(
        params.and_then(|p| p.get("class_names")),
        "model_info.class_params.class_names",
    )?;
    if names.is_empty() {
        return Ok(ClassLabels::Int((0..n_classes as i64).collect()));
    }
    if names.len() != n_classes {
        return Err(cx.invalid(
            "model_info.class_params.class_names",
            format!("{} names for {n_classes} classes", names.len()),
        ));
    }
    if let Some(ints) = names.iter().map(Value::as_i64).collect::<Option<Vec<_>>>() {
        return Ok(ClassLabels::Int(ints));
    }
    let strs = names
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
        .collect();
    Ok(ClassLabels::Str(strs))
}

fn read_ctr(
    cx: &Cx<'_>,
    c: &Value,
    i: usize,
    n_cats: usize,
    data: Option<&serde_json::Map<String, Value>>,
    vocab_hash: &[u32],
) -> R<Ctr> {
    let field = format!("features_info.ctrs[{i}]");
    let o = cx.obj(c, &field)?;
    let ctr_type = cx.str(o.get("ctr_type"), &format!("{field}.ctr_type"))?;
    let identifier = cx.str(o.get("identifier"), &format!("{field}.identifier"))?;
    let elements = cx.arr(o.get("elements"), &format!("{field}.elements"))?;
    let cat = match elements {
        [e] if e.get("combination_element").and_then(Value::as_str)
            == Some("cat_feature_value") =>
        {
            cx.uint(
                e.get("cat_feature_index"),
                &format!("{field}.elements[0].cat_feature_index"),
                n_cats as u64,
            )? as usize
        }
        _ => {
            return Err(cx.unsupported(format!(
                "{field}: CTR {identifier} over a combination of features (only CTRs of one \
                 categorical feature are supported; train with max_ctr_complexity=1)"
            )))
        }
    };
    let prior_num = cx.num(
        o.get("prior_numerator"),
        &format!("{field}.prior_numerator"),
    )? as f32;
    let prior_denom = cx.num(
        o.get("prior_denomerator"),
        &format!("{field}.prior_denomerator"),
    )? as f32;
    let shift = cx.num(o.get("shift"), &format!("{field}.shift"))? as f32;
    let scale = cx.num(o.get("scale"), &format!("{field}.scale"))? as f32;
    let target_border_idx = cx.uint(
        o.get("target_border_idx"),
        &format!("{field}.target_border_idx"),
        1 << 16,
    )? as usize;
    let mut borders = Vec::new();
    for (k, b) in cx
        .arr(o.get("borders"), &format!("{field}.borders"))?
        .iter()
        .enumerate()
    {
        borders.push(cx.num(Some(b), &format!("{field}.borders[{k}]"))?);
    }
    let calc = |good: f32, total: f32| ((good + prior_num) / (total + prior_denom) + shift) * scale;

    let table = data
        .and_then(|d| d.get(identifier))
        .ok_or_else(|| cx.invalid("ctr_data", format!("no table for CTR {identifier}")))?;
    let tfield = format!("ctr_data[{identifier:?}]");
    let t = cx.obj(table, &tfield)?;
    let stride = cx.uint(
        t.get("hash_stride"),
        &format!("{tfield}.hash_stride"),
        1 << 16,
    )? as usize;
    let map = cx.arr(t.get("hash_map"), &format!("{tfield}.hash_map"))?;
    if stride < 2 || map.len() % stride != 0 {
        return Err(cx.invalid(
            format!("{tfield}.hash_map"),
            format!(
                "{} entries, not a multiple of hash_stride {stride} (>= 2)",
                map.len()
            ),
        ));
    }
    let denominator = match t.get("counter_denominator") {
        Some(v) => cx.num(Some(v), &format!("{tfield}.counter_denominator"))?,
        None => 0.0,
    } as f32;
    let mut counts: HashMap<u64, Vec<f32>> = HashMap::new();
    for (row, chunk) in map.chunks(stride).enumerate() {
        let key = match chunk.first() {
            Some(Value::String(s)) => s.parse::<u64>().ok(),
            Some(v) => v.as_u64(),
            None => None,
        }
        .ok_or_else(|| {
            cx.invalid(
                format!("{tfield}.hash_map[{}]", row * stride),
                "expected a 64-bit hash",
            )
        })?;
        if key == u64::MAX {
            continue; // an empty bucket
        }
        let mut c = Vec::with_capacity(stride - 1);
        for (k, v) in chunk.iter().skip(1).enumerate() {
            c.push(cx.num(
                Some(v),
                &format!("{tfield}.hash_map[{}]", row * stride + 1 + k),
            )? as f32);
        }
        counts.insert(key, c);
    }
    let classes = stride - 1;
    let value_of = |c: &[f32]| -> R<f32> {
        let get = |k: usize| c.get(k).copied().unwrap_or(0.0);
        Ok(match ctr_type {
            "Counter" | "FeatureFreq" => calc(get(0), denominator),
            "Buckets" => {
                if target_border_idx >= classes {
                    return Err(cx.invalid(
                        format!("{field}.target_border_idx"),
                        format!("{target_border_idx} for {classes} classes"),
                    ));
                }
                calc(get(target_border_idx), c.iter().sum())
            }
            "Borders" if classes == 2 => calc(get(1), get(0) + get(1)),
            "Borders" => {
                if target_border_idx + 1 >= classes.max(1) {
                    return Err(cx.invalid(
                        format!("{field}.target_border_idx"),
                        format!("{target_border_idx} for {classes} classes"),
                    ));
                }
                let good: f32 = c.iter().skip(target_border_idx + 1).sum();
                let total: f32 = c.iter().take(target_border_idx + 1).sum::<f32>() + good;
                calc(good, total)
            }
            other => {
                return Err(cx.unsupported(format!(
                    "{field}: CTR type {other:?} (supported: Borders, Buckets, Counter, \
                     FeatureFreq)"
                )))
            }
        })
    };
    let unknown = calc(0.0, 0.0);
    // Validate the type once, even when no category is known.
    value_of(&[])?;
    let mut values = Vec::with_capacity(vocab_hash.len());
    for &h in vocab_hash {
        values.push(match counts.get(&ctr_key(h)) {
            Some(c) => value_of(c)?,
            None => unknown,
        });
    }
    Ok(Ctr {
        cat,
        borders,
        values,
        unknown,
    })
}
