//! XGBoost models saved as JSON or UBJSON (`Booster.save_model` / `save_raw`), 1.x to 3.x.
//!
//! What decides a prediction, and how it maps onto `TreeEnsemble`:
//! - a numeric split sends `x < t` left, with `x` and `t` in f32 (`comparison = lt`,
//!   `input_precision = f32`; thresholds and leaf values are read as f32 then widened);
//! - a missing value (NaN) follows `default_left`;
//! - a categorical split (`split_type = 1`) sends the categories listed for the node
//!   (`categories_nodes` / `categories_segments` / `categories_sizes` into `categories`)
//!   right, everything else (unlisted, negative including `-1 < x < 0`, NaN follows
//!   `default_left`) left (`categorical_rule = xgboost`, XGBoost's `InvalidCat`);
//! - leaf values are `split_conditions` of leaf nodes (learning rate already applied);
//! - `tree_info[k]` is the output column of tree `k` (the class, for multiclass);
//!   parallel trees (`num_parallel_tree`, random forests) are summed like any other;
//! - DART trees are scaled by `weight_drop`;
//! - `base_score` (a number, or in 2.1+ a string holding a JSON array such as `"[5E-1]"`) is
//!   in the objective's output space: logit for `binary:logistic`/`reg:logistic`, log for
//!   poisson/gamma/tweedie, as is for the rest (also `binary:logitraw`, whose base score XGBoost
//!   adds to the margin unchanged).

use serde_json::Value;

use mle_format::{DType, ModelBuilder, Task};

use mle_format::tree::{flags, Aggregate, CategoricalRule, Comparison, Members, Precision};

use crate::ensemble::{
    build, default_feature_names, Ensemble, GraphSpec, LocalNode, Post, TreeInfo, MAX_CAT_WORDS,
    MAX_FEATURES,
};
use crate::error::ImportError;

/// How an objective maps onto the graph.
#[derive(Debug, Clone, Copy, PartialEq)]
enum BaseLink {
    Identity,
    Logit,
    Log,
}

struct Ctx<'a> {
    name: &'a str,
}

impl Ctx<'_> {
    fn invalid(&self, field: &str, detail: impl Into<String>) -> ImportError {
        ImportError::InvalidField {
            name: self.name.to_string(),
            field: field.to_string(),
            detail: detail.into(),
        }
    }

    fn unsupported(&self, detail: impl Into<String>) -> ImportError {
        ImportError::UnsupportedModel {
            name: self.name.to_string(),
            detail: detail.into(),
        }
    }

    fn get<'v>(&self, v: &'v Value, path: &str, key: &str) -> Result<&'v Value, ImportError> {
        match v {
            Value::Object(m) => m
                .get(key)
                .ok_or_else(|| self.invalid(&join(path, key), "missing")),
            _ => Err(self.invalid(path, "expected an object")),
        }
    }

    fn array<'v>(&self, v: &'v Value, path: &str) -> Result<&'v [Value], ImportError> {
        v.as_array()
            .map(|a| a.as_slice())
            .ok_or_else(|| self.invalid(path, "expected an array"))
    }

    fn str<'v>(&self, v: &'v Value, path: &str) -> Result<&'v str, ImportError> {
        v.as_str()
            .ok_or_else(|| self.invalid(path, "expected a string"))
    }

    /// An integer held as a JSON number or as a string (XGBoost writes parameters as strings).
    fn int(&self, v: &Value, path: &str) -> Result<i64, ImportError> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| {
                    n.as_f64()
                        .filter(|f| f.fract() == 0.0 && f.abs() < 9e15)
                        .map(|f| f as i64)
                })
                .ok_or_else(|| self.invalid(path, format!("expected an integer, found {n}"))),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| self.invalid(path, format!("expected an integer, found {s:?}"))),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(self.invalid(path, format!("expected an integer, found {other}"))),
        }
    }

    fn count(&self, v: &Value, path: &str, max: usize) -> Result<usize, ImportError> {
        let n = self.int(v, path)?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= max)
            .ok_or_else(|| self.invalid(path, format!("{n} is out of range 0..={max}")))
    }

    fn f32_of(&self, v: &Value, path: &str) -> Result<f32, ImportError> {
        match v {
            Value::Number(n) => n
                .as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| self.invalid(path, format!("expected a number, found {n}"))),
            other => Err(self.invalid(path, format!("expected a number, found {other}"))),
        }
    }

    fn ints(&self, v: &Value, path: &str) -> Result<Vec<i64>, ImportError> {
        self.array(v, path)?
            .iter()
            .enumerate()
            .map(|(i, x)| self.int(x, &format!("{path}[{i}]")))
            .collect()
    }

    fn f32s(&self, v: &Value, path: &str) -> Result<Vec<f32>, ImportError> {
        self.array(v, path)?
            .iter()
            .enumerate()
            .map(|(i, x)| self.f32_of(x, &format!("{path}[{i}]")))
            .collect()
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Parses `base_score`: a number, a numeric string (`"5E-1"`), or a string holding a JSON
/// array (`"[5E-1]"`, XGBoost 2.1+), into f32 values.
fn base_score(ctx: &Ctx, v: &Value, path: &str) -> Result<Vec<f32>, ImportError> {
    match v {
        Value::Number(_) => Ok(vec![ctx.f32_of(v, path)?]),
        Value::String(s) => {
            let s = s.trim();
            if s.starts_with('[') {
                let arr: Value = serde_json::from_str(s).map_err(|e| {
                    ctx.invalid(path, format!("{s:?} is not a JSON array of numbers: {e}"))
                })?;
                ctx.f32s(&arr, path)
            } else {
                s.parse::<f32>()
                    .map(|f| vec![f])
                    .map_err(|_| ctx.invalid(path, format!("{s:?} is not a number")))
            }
        }
        Value::Array(_) => ctx.f32s(v, path),
        other => Err(ctx.invalid(path, format!("expected a number, found {other}"))),
    }
}

/// Imports an XGBoost model from its JSON document (already decoded from JSON or UBJSON).
pub fn import_value(doc: &Value, name: &str) -> Result<ModelBuilder, ImportError> {
    let ctx = Ctx { name };
    let learner = ctx.get(doc, "", "learner")?;
    let version = match doc.get("version").and_then(|v| v.as_array()) {
        Some(parts) => parts
            .iter()
            .map(|p| p.as_i64().map(|i| i.to_string()).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("."),
        None => String::new(),
    };
    let lmp = ctx.get(learner, "learner", "learner_model_param")?;
    let lmp_path = "learner.learner_model_param";
    let n_features = ctx.count(
        ctx.get(lmp, lmp_path, "num_feature")?,
        &join(lmp_path, "num_feature"),
        MAX_FEATURES,
    )?;
    let num_class = ctx.count(
        ctx.get(lmp, lmp_path, "num_class")?,
        &join(lmp_path, "num_class"),
        1 << 16,
    )?;
    let num_target = match lmp.get("num_target") {
        Some(v) => ctx.count(v, &join(lmp_path, "num_target"), 1 << 16)?,
        None => 1,
    };
    let objective_name = ctx.str(
        ctx.get(
            ctx.get(learner, "learner", "objective")?,
            "learner.objective",
            "name",
        )?,
        "learner.objective.name",
    )?;

    let (task, post, link) = match objective_name {
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror" => (Task::Regression, Post::Identity, BaseLink::Identity),
        "reg:logistic" => (Task::Regression, Post::Sigmoid, BaseLink::Logit),
        "binary:logistic" => (Task::Binary, Post::BinarySigmoid, BaseLink::Logit),
        "binary:logitraw" => (Task::Binary, Post::BinarySigmoid, BaseLink::Identity),
        "multi:softprob" | "multi:softmax" => (Task::Multiclass, Post::Softmax, BaseLink::Identity),
        "count:poisson" | "reg:gamma" | "reg:tweedie" => {
            (Task::Regression, Post::Exp, BaseLink::Log)
        }
        o if o.starts_with("rank:") => (Task::Ranking, Post::Identity, BaseLink::Identity),
        other => {
            return Err(ctx.unsupported(format!(
                "objective {other:?} (supported: reg:squarederror, reg:squaredlogerror, \
                 reg:pseudohubererror, reg:absoluteerror, reg:quantileerror, reg:logistic, \
                 binary:logistic, binary:logitraw, multi:softprob, multi:softmax, count:poisson, \
                 reg:gamma, reg:tweedie, rank:*)"
            )))
        }
    };
    let n_targets = match task {
        Task::Multiclass => {
            if num_class < 2 {
                return Err(ctx.invalid(
                    &join(lmp_path, "num_class"),
                    format!("{objective_name} needs num_class >= 2, found {num_class}"),
                ));
            }
            num_class
        }
        _ => num_target.max(1),
    };
    if task == Task::Binary && n_targets != 1 {
        return Err(ctx.unsupported(format!(
            "{objective_name} with num_target = {n_targets} (multi-label classification)"
        )));
    }

    // Base score, converted to margin space.
    let bs_path = join(lmp_path, "base_score");
    let raw_bs = match lmp.get("base_score") {
        Some(v) => base_score(&ctx, v, &bs_path)?,
        None => vec![0.5],
    };
    if raw_bs.len() != 1 && raw_bs.len() != n_targets {
        return Err(ctx.invalid(
            &bs_path,
            format!("{} values for {n_targets} outputs", raw_bs.len()),
        ));
    }
    let mut base_scores = Vec::with_capacity(n_targets);
    for t in 0..n_targets {
        let b = raw_bs.get(t).or(raw_bs.first()).copied().unwrap_or(0.5);
        let m = match link {
            BaseLink::Identity => b,
            BaseLink::Logit => {
                if !(b > 0.0 && b < 1.0) {
                    return Err(ctx.invalid(
                        &bs_path,
                        format!("{b} is not a probability in (0, 1) as {objective_name} needs"),
                    ));
                }
                -(1.0f32 / b - 1.0f32).ln()
            }
            BaseLink::Log => {
                if b.is_nan() || b <= 0.0 {
                    return Err(ctx.invalid(
                        &bs_path,
                        format!("{b} is not positive as {objective_name} needs"),
                    ));
                }
                b.ln()
            }
        };
        if !m.is_finite() {
            return Err(ctx.invalid(&bs_path, format!("{b} gives a non-finite margin {m}")));
        }
        base_scores.push(m as f64);
    }

    // The booster.
    let gb = ctx.get(learner, "learner", "gradient_booster")?;
    let gb_path = "learner.gradient_booster";
    let booster = ctx.str(ctx.get(gb, gb_path, "name")?, &join(gb_path, "name"))?;
    let (model, model_path, weight_drop) = match booster {
        "gbtree" => (
            ctx.get(gb, gb_path, "model")?,
            format!("{gb_path}.model"),
            None,
        ),
        "dart" => {
            let inner = ctx.get(gb, gb_path, "gbtree")?;
            let wd_path = join(gb_path, "weight_drop");
            let wd = ctx.f32s(ctx.get(gb, gb_path, "weight_drop")?, &wd_path)?;
            (
                ctx.get(inner, &join(gb_path, "gbtree"), "model")?,
                format!("{gb_path}.gbtree.model"),
                Some((wd, wd_path)),
            )
        }
        "gblinear" => return Err(ctx.unsupported(
            "booster \"gblinear\" (linear models): only tree boosters (gbtree, dart) are supported",
        )),
        other => return Err(ctx.unsupported(format!("booster {other:?}"))),
    };
    let trees_path = join(&model_path, "trees");
    let trees = ctx.array(ctx.get(model, &model_path, "trees")?, &trees_path)?;
    let info_path = join(&model_path, "tree_info");
    let tree_info = ctx.ints(ctx.get(model, &model_path, "tree_info")?, &info_path)?;
    if tree_info.len() != trees.len() {
        return Err(ctx.invalid(
            &info_path,
            format!("{} entries for {} trees", tree_info.len(), trees.len()),
        ));
    }
    if let Some((wd, wd_path)) = &weight_drop {
        if wd.len() != trees.len() {
            return Err(ctx.invalid(
                wd_path,
                format!("{} entries for {} trees", wd.len(), trees.len()),
            ));
        }
    }

    let mut ens = Ensemble::default();
    for (k, tree) in trees.iter().enumerate() {
        let path = format!("{trees_path}[{k}]");
        let target = tree_info.get(k).copied().unwrap_or(0);
        let target = usize::try_from(target)
            .ok()
            .filter(|&t| t < n_targets)
            .ok_or_else(|| {
                ctx.invalid(
                    &format!("{info_path}[{k}]"),
                    format!("output {target} out of range 0..{n_targets}"),
                )
            })?;
        let (nodes, covers) = parse_tree(&ctx, tree, &path, n_features, ens.cat_words())?;
        let weight = match &weight_drop {
            Some((wd, _)) => wd.get(k).copied().unwrap_or(1.0) as f64,
            None => 1.0,
        };
        // Leaf indices are XGBoost node ids: the local index.
        let info = TreeInfo {
            covers: covers.as_deref(),
            ids: None,
        };
        ens.push_tree_with(&nodes, info, 0, target as u32, weight, name, &path)?;
    }

    let feature_names = match learner.get("feature_names").and_then(|v| v.as_array()) {
        Some(names) if !names.is_empty() => {
            if names.len() != n_features {
                return Err(ctx.invalid(
                    "learner.feature_names",
                    format!("{} names for {n_features} features", names.len()),
                ));
            }
            names
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    n.as_str().map(str::to_string).ok_or_else(|| {
                        ctx.invalid(&format!("learner.feature_names[{i}]"), "expected a string")
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        _ => default_feature_names(n_features),
    };

    build(
        ens,
        GraphSpec {
            framework: "xgboost",
            framework_version: version,
            model_type: booster.to_string(),
            task,
            feature_names,
            input_dtype: DType::F32,
            n_targets,
            comparison: Comparison::Lt,
            input_precision: Precision::F32,
            aggregate: Aggregate::Sum,
            categorical_members: Members::Right,
            categorical_rule: CategoricalRule::XgBoost,
            base_scores,
            post,
        },
    )
}

/// Parses one tree into local nodes (index = XGBoost node id) and their covers
/// (`sum_hessian`, when the tree has it).
fn parse_tree(
    ctx: &Ctx,
    tree: &Value,
    path: &str,
    n_features: usize,
    cat_words_so_far: usize,
) -> Result<(Vec<LocalNode>, Option<Vec<f64>>), ImportError> {
    let field = |key: &str| ctx.get(tree, path, key);
    let fpath = |key: &str| join(path, key);
    if let Some(tp) = tree.get("tree_param") {
        if let Some(v) = tp.get("size_leaf_vector") {
            let n = ctx.int(v, &fpath("tree_param.size_leaf_vector"))?;
            if n > 1 {
                return Err(ctx.unsupported(format!(
                    "{path}: vector-leaf trees (multi_strategy=\"multi_output_tree\", size_leaf_vector = {n})"
                )));
            }
        }
    }
    let left = ctx.ints(field("left_children")?, &fpath("left_children"))?;
    let n = left.len();
    if n == 0 {
        return Err(ctx.invalid(&fpath("left_children"), "a tree needs at least one node"));
    }
    if let Some(v) = tree.get("tree_param").and_then(|tp| tp.get("num_nodes")) {
        let declared = ctx.int(v, &fpath("tree_param.num_nodes"))?;
        if declared != n as i64 {
            return Err(ctx.invalid(
                &fpath("tree_param.num_nodes"),
                format!("{declared} but left_children has {n} entries"),
            ));
        }
    }
    let right = ctx.ints(field("right_children")?, &fpath("right_children"))?;
    let split_indices = ctx.ints(field("split_indices")?, &fpath("split_indices"))?;
    let split_conditions = ctx.f32s(field("split_conditions")?, &fpath("split_conditions"))?;
    let default_left = ctx.ints(field("default_left")?, &fpath("default_left"))?;
    let split_type = match tree.get("split_type") {
        Some(v) => ctx.ints(v, &fpath("split_type"))?,
        None => vec![0; n],
    };
    for (key, len) in [
        ("right_children", right.len()),
        ("split_indices", split_indices.len()),
        ("split_conditions", split_conditions.len()),
        ("default_left", default_left.len()),
        ("split_type", split_type.len()),
    ] {
        if len != n {
            return Err(ctx.invalid(
                &fpath(key),
                format!("{len} entries, but left_children has {n}"),
            ));
        }
    }

    let covers = match tree.get("sum_hessian") {
        Some(v) => {
            let c = ctx.f32s(v, &fpath("sum_hessian"))?;
            if c.len() != n {
                return Err(ctx.invalid(
                    &fpath("sum_hessian"),
                    format!("{} entries, but left_children has {n}", c.len()),
                ));
            }
            if let Some((i, v)) = c
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(ctx.invalid(
                    &format!("{}[{i}]", fpath("sum_hessian")),
                    format!("cover {v} is not finite and >= 0"),
                ));
            }
            Some(c.into_iter().map(f64::from).collect())
        }
        None => None,
    };

    // Category sets of categorical nodes.
    let mut cat_sets: Vec<Option<Vec<u32>>> = vec![None; n];
    if let Some(cn) = tree.get("categories_nodes") {
        let nodes = ctx.ints(cn, &fpath("categories_nodes"))?;
        let segs = ctx.ints(field("categories_segments")?, &fpath("categories_segments"))?;
        let sizes = ctx.ints(field("categories_sizes")?, &fpath("categories_sizes"))?;
        let cats = ctx.ints(field("categories")?, &fpath("categories"))?;
        if segs.len() != nodes.len() || sizes.len() != nodes.len() {
            return Err(ctx.invalid(
                &fpath("categories_segments"),
                format!(
                    "categories_nodes has {} entries, categories_segments {}, categories_sizes {}",
                    nodes.len(),
                    segs.len(),
                    sizes.len()
                ),
            ));
        }
        let mut words_total = cat_words_so_far;
        for (j, ((&node, &seg), &size)) in nodes.iter().zip(&segs).zip(&sizes).enumerate() {
            let node = usize::try_from(node)
                .ok()
                .filter(|&x| x < n)
                .ok_or_else(|| {
                    ctx.invalid(
                        &format!("{}[{j}]", fpath("categories_nodes")),
                        format!("node {node} out of range 0..{n}"),
                    )
                })?;
            let range = usize::try_from(seg)
                .ok()
                .zip(usize::try_from(size).ok())
                .and_then(|(s, z)| Some(s..s.checked_add(z)?))
                .filter(|r| r.end <= cats.len())
                .ok_or_else(|| {
                    ctx.invalid(
                        &format!("{}[{j}]", fpath("categories_segments")),
                        format!(
                            "segment {seg} of size {size} exceeds the {} categories",
                            cats.len()
                        ),
                    )
                })?;
            let members = cats.get(range).unwrap_or(&[]);
            let mut words: Vec<u32> = Vec::new();
            for &c in members {
                let c = usize::try_from(c)
                    .ok()
                    .filter(|&c| c < 1 << 24)
                    .ok_or_else(|| {
                        ctx.invalid(
                            &fpath("categories"),
                            format!("category {c} out of range 0..2^24"),
                        )
                    })?;
                let w = c / 32;
                if w >= words.len() {
                    if words_total + w + 1 > MAX_CAT_WORDS {
                        return Err(ctx.invalid(
                            &fpath("categories"),
                            format!("category bitsets exceed {MAX_CAT_WORDS} words"),
                        ));
                    }
                    words_total += w + 1 - words.len();
                    words.resize(w + 1, 0);
                }
                if let Some(x) = words.get_mut(w) {
                    *x |= 1 << (c % 32);
                }
            }
            if let Some(slot) = cat_sets.get_mut(node) {
                *slot = Some(words);
            }
        }
    }

    let mut nodes = Vec::with_capacity(n);
    for i in 0..n {
        let l = left.get(i).copied().unwrap_or(-1);
        let value = split_conditions.get(i).copied().unwrap_or(0.0);
        if l == -1 {
            if !value.is_finite() {
                return Err(ctx.invalid(
                    &format!("{}[{i}]", fpath("split_conditions")),
                    format!("leaf value {value} is not finite"),
                ));
            }
            nodes.push(LocalNode::Leaf(value as f64));
            continue;
        }
        let r = right.get(i).copied().unwrap_or(-1);
        let child = |c: i64, key: &str| {
            usize::try_from(c).ok().filter(|&c| c < n).ok_or_else(|| {
                ctx.invalid(
                    &format!("{}[{i}]", fpath(key)),
                    format!("child index {c} out of range 0..{n}"),
                )
            })
        };
        let (l, r) = (child(l, "left_children")?, child(r, "right_children")?);
        let f = split_indices.get(i).copied().unwrap_or(-1);
        let feature = usize::try_from(f)
            .ok()
            .filter(|&f| f < n_features)
            .ok_or_else(|| {
                ctx.invalid(
                    &format!("{}[{i}]", fpath("split_indices")),
                    format!("feature {f} out of range 0..{n_features}"),
                )
            })?;
        let mut fl = 0u8;
        if default_left.get(i).copied().unwrap_or(0) != 0 {
            fl |= flags::MISSING_LEFT;
        }
        let cats = match split_type.get(i).copied().unwrap_or(0) {
            0 => Vec::new(),
            1 => {
                fl |= flags::CATEGORICAL;
                cat_sets
                    .get_mut(i)
                    .and_then(Option::take)
                    .unwrap_or_default()
            }
            st => {
                return Err(ctx.invalid(
                    &format!("{}[{i}]", fpath("split_type")),
                    format!("unknown split type {st} (0 numeric, 1 categorical)"),
                ))
            }
        };
        if fl & flags::CATEGORICAL == 0 && value.is_nan() {
            return Err(ctx.invalid(
                &format!("{}[{i}]", fpath("split_conditions")),
                "threshold is NaN",
            ));
        }
        nodes.push(LocalNode::Split {
            feature: feature as i32,
            threshold: value as f64,
            left: l,
            right: r,
            flags: fl,
            cats,
        });
    }
    Ok((nodes, covers))
}
