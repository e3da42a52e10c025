//! LightGBM text models (`Booster.save_model` / `model_to_string`), version v2 to v4.
//!
//! What decides a prediction, and how it maps onto `TreeEnsemble`:
//! - a numeric split sends `x <= t` left, in f64 (`comparison = le`, `input_precision = f64`);
//!   thresholds are written with 17 significant digits, so they parse back exactly;
//! - `decision_type` bit 0: categorical; bit 1: default left; bits 2-3: missing type
//!   (0 None: NaN is replaced by 0 and compared; 1 Zero: zero and NaN are missing; 2 NaN: NaN
//!   is missing), mapped onto the `flags` bits of `docs/OPS.md`;
//! - a categorical split's `threshold` indexes `cat_boundaries`, which delimits the node's
//!   bitset words in `cat_threshold`; members go left, everything else (NaN, `x <= -1`,
//!   unlisted) right, and `-1 < x < 0` is category 0 (`categorical_rule = lightgbm`,
//!   LightGBM's `static_cast<int>`);
//! - children: `>= 0` an internal node, `< 0` the leaf `!child`;
//! - leaf values already include the shrinkage (learning rate) and the initial score;
//! - tree `k` adds to class `k % num_tree_per_iteration`; `average_output` (random forest)
//!   divides each class by its number of trees;
//! - the `objective=` line decides the transform (`sigmoid:` scales the binary and
//!   one-vs-all margins; the scale is folded into the tree weights).
//!
//! LightGBM reads any input with `|x| <= 1e-35` (`kZeroThreshold`) as 0. Thresholds inside
//! that band are moved to its edge (see `zero_band_threshold`), which makes comparisons
//! exact; a `MissingType::Zero` node treats every `|x| <= 1e-35` as missing, which is what
//! `flags` bit 3 of `docs/OPS.md` means.

use std::collections::HashMap;

use mle_format::{DType, ModelBuilder, Task};

use mle_format::tree::{flags, Aggregate, CategoricalRule, Comparison, Members, Precision};

use crate::ensemble::{
    build, default_feature_names, Ensemble, GraphSpec, LocalNode, Post, TreeInfo, MAX_FEATURES,
};
use crate::error::ImportError;

struct Ctx<'a> {
    name: &'a str,
}

impl Ctx<'_> {
    fn invalid(
        &self,
        line: usize,
        field: impl std::fmt::Display,
        detail: impl Into<String>,
    ) -> ImportError {
        ImportError::InvalidField {
            name: self.name.to_string(),
            field: format!("line {line}: {field}"),
            detail: detail.into(),
        }
    }

    fn unsupported(&self, detail: impl Into<String>) -> ImportError {
        ImportError::UnsupportedModel {
            name: self.name.to_string(),
            detail: detail.into(),
        }
    }
}

/// `key=value` lines of one block, with their 1-based line numbers.
#[derive(Default)]
struct Block<'a> {
    fields: HashMap<&'a str, (usize, &'a str)>,
    /// Line of the block's first line.
    line: usize,
}

impl<'a> Block<'a> {
    fn get(&self, key: &str) -> Option<(usize, &'a str)> {
        self.fields.get(key).copied()
    }
}

fn parse_num<T: std::str::FromStr>(
    ctx: &Ctx,
    line: usize,
    field: &str,
    s: &str,
) -> Result<T, ImportError> {
    s.trim()
        .parse::<T>()
        .map_err(|_| ctx.invalid(line, field, format!("{s:?} is not a valid number")))
}

fn parse_list<T: std::str::FromStr>(
    ctx: &Ctx,
    line: usize,
    field: &str,
    s: &str,
) -> Result<Vec<T>, ImportError> {
    s.split_ascii_whitespace()
        .enumerate()
        .map(|(i, x)| {
            x.parse::<T>().map_err(|_| {
                ctx.invalid(
                    line,
                    format!("{field}[{i}]"),
                    format!("{x:?} is not a valid number"),
                )
            })
        })
        .collect()
}

/// Imports a LightGBM text model.
pub fn import_text(text: &str, name: &str) -> Result<ModelBuilder, ImportError> {
    let ctx = Ctx { name };
    // Split into the header, the tree blocks and the parameters.
    let mut header = Block {
        line: 1,
        ..Default::default()
    };
    let mut header_flags: Vec<&str> = Vec::new();
    let mut trees: Vec<Block> = Vec::new();
    let mut boosting: Option<&str> = None;
    let mut section = 0; // 0 header, 1 trees, 2 after trees
    let mut first = true;
    for (i, raw) in text.lines().enumerate() {
        let ln = i + 1;
        let line = raw.trim_end_matches('\r');
        if first {
            first = false;
            if line.trim() != "tree" {
                return Err(ImportError::Malformed {
                    name: name.to_string(),
                    format: "LightGBM text model",
                    detail: format!("line 1 is {:?}, expected \"tree\"", truncate(line)),
                });
            }
            continue;
        }
        if line.starts_with("end of trees") {
            section = 2;
            continue;
        }
        if section == 2 {
            if let Some(v) = line.strip_prefix("[boosting: ") {
                boosting = v.strip_suffix(']');
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        if line.starts_with("Tree=") {
            section = 1;
            trees.push(Block {
                line: ln,
                ..Default::default()
            });
        }
        let block = if section == 0 {
            &mut header
        } else {
            match trees.last_mut() {
                Some(b) => b,
                None => &mut header,
            }
        };
        match line.split_once('=') {
            Some((k, v)) => {
                if block.fields.insert(k, (ln, v)).is_some() {
                    return Err(ctx.invalid(ln, k, "appears twice in the same block"));
                }
            }
            None => {
                if section == 0 {
                    header_flags.push(line.trim());
                } else {
                    return Err(ImportError::Malformed {
                        name: name.to_string(),
                        format: "LightGBM text model",
                        detail: format!(
                            "line {ln}: expected key=value, found {:?}",
                            truncate(line)
                        ),
                    });
                }
            }
        }
    }
    if first {
        return Err(ImportError::Malformed {
            name: name.to_string(),
            format: "LightGBM text model",
            detail: "the text is empty".into(),
        });
    }
    if section != 2 {
        return Err(ImportError::Malformed {
            name: name.to_string(),
            format: "LightGBM text model",
            detail: "no \"end of trees\" line: the model is truncated".into(),
        });
    }

    let need = |key: &str| -> Result<(usize, &str), ImportError> {
        header.get(key).ok_or_else(|| ImportError::InvalidField {
            name: name.to_string(),
            field: format!("header {key}"),
            detail: "missing".into(),
        })
    };
    let (ln, v) = need("num_class")?;
    let num_class: usize = parse_num(&ctx, ln, "num_class", v)?;
    let (ln, v) = need("num_tree_per_iteration")?;
    let per_iter: usize = parse_num(&ctx, ln, "num_tree_per_iteration", v)?;
    if per_iter == 0 || per_iter > 1 << 16 {
        return Err(ctx.invalid(
            ln,
            "num_tree_per_iteration",
            format!("{per_iter} is out of range 1..=65536"),
        ));
    }
    let (ln, v) = need("max_feature_idx")?;
    let max_feature: i64 = parse_num(&ctx, ln, "max_feature_idx", v)?;
    let n_features = usize::try_from(max_feature + 1)
        .ok()
        .filter(|&n| n <= MAX_FEATURES)
        .ok_or_else(|| {
            ctx.invalid(
                ln,
                "max_feature_idx",
                format!("{max_feature} is out of range -1..{MAX_FEATURES}"),
            )
        })?;
    let version = header
        .get("version")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let average_output = header_flags.contains(&"average_output");
    if header.get("linear").is_some_and(|(_, v)| v.trim() == "1") {
        return Err(ctx.unsupported("linear trees (linear_tree=true, is_linear=1)"));
    }

    // Objective.
    let (ln, objective_line) = need("objective")?;
    let mut words = objective_line.split_ascii_whitespace();
    let objective = words.next().unwrap_or("");
    let mut sigmoid = 1.0f64;
    let mut sqrt = false;
    for w in words {
        if let Some(s) = w.strip_prefix("sigmoid:") {
            sigmoid = parse_num(&ctx, ln, "objective sigmoid", s)?;
            if !(sigmoid.is_finite() && sigmoid > 0.0) {
                return Err(ctx.invalid(
                    ln,
                    "objective sigmoid",
                    format!("{sigmoid} is not a positive number"),
                ));
            }
        } else if w == "sqrt" {
            sqrt = true;
        }
    }
    let (task, post) = match objective {
        "regression" | "regression_l2" | "regression_l1" | "huber" | "fair" | "quantile"
        | "mape" | "custom" => (Task::Regression, Post::Identity),
        "binary" => (Task::Binary, Post::BinarySigmoid),
        "multiclass" | "softmax" => (Task::Multiclass, Post::Softmax),
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => (Task::Multiclass, Post::OvaSigmoid),
        "poisson" | "gamma" | "tweedie" => (Task::Regression, Post::Exp),
        "cross_entropy" | "xentropy" => (Task::Regression, Post::Sigmoid),
        "lambdarank" | "rank_xendcg" | "xendcg" | "xe_ndcg" | "xe_ndcg_mart" | "xendcg_mart" => {
            (Task::Ranking, Post::Identity)
        }
        other => {
            return Err(ctx.unsupported(format!(
                "objective {other:?} (supported: regression, regression_l1, huber, fair, quantile, \
                 mape, binary, multiclass, multiclassova, poisson, gamma, tweedie, cross_entropy, \
                 lambdarank, rank_xendcg)"
            )))
        }
    };
    if sqrt {
        return Err(ctx.unsupported(format!(
            "objective {objective:?} with reg_sqrt (squared outputs)"
        )));
    }
    let n_targets = match task {
        Task::Multiclass => {
            if num_class < 2 || per_iter != num_class {
                return Err(ctx.invalid(
                    ln,
                    "num_class",
                    format!("{objective} needs num_class >= 2 trees per iteration, found num_class={num_class}, num_tree_per_iteration={per_iter}"),
                ));
            }
            num_class
        }
        _ => {
            if per_iter != 1 {
                return Err(ctx.unsupported(format!(
                    "objective {objective:?} with num_tree_per_iteration = {per_iter}"
                )));
            }
            1
        }
    };
    let tree_weight = match post {
        Post::BinarySigmoid | Post::OvaSigmoid => sigmoid,
        _ => 1.0,
    };

    // Feature names.
    let feature_names = match header.get("feature_names") {
        Some((ln, v)) => {
            let names: Vec<String> = v.split_ascii_whitespace().map(str::to_string).collect();
            if names.len() != n_features {
                return Err(ctx.invalid(
                    ln,
                    "feature_names",
                    format!("{} names for {n_features} features", names.len()),
                ));
            }
            names
        }
        None => default_feature_names(n_features),
    };

    let mut ens = Ensemble::default();
    for (k, block) in trees.iter().enumerate() {
        let tree = parse_tree(&ctx, block, n_features)?;
        let what = format!("line {}: Tree={k}", block.line);
        let info = TreeInfo {
            covers: tree.covers.as_deref(),
            ids: Some(&tree.ids),
        };
        let target = (k % n_targets) as u32;
        ens.push_tree_with(&tree.nodes, info, 0, target, tree_weight, name, &what)?;
    }
    if average_output && ens.n_trees() == 0 {
        return Err(ctx.invalid(1, "average_output", "a random forest with no trees"));
    }

    build(
        ens,
        GraphSpec {
            framework: "lightgbm",
            framework_version: version,
            model_type: boosting.unwrap_or("gbdt").to_string(),
            task,
            feature_names,
            input_dtype: DType::F64,
            n_targets,
            comparison: Comparison::Le,
            input_precision: Precision::F64,
            aggregate: if average_output {
                Aggregate::Average
            } else {
                Aggregate::Sum
            },
            categorical_members: Members::Left,
            categorical_rule: CategoricalRule::LightGbm,
            base_scores: vec![0.0; n_targets],
            post,
        },
    )
}

/// LightGBM's `kZeroThreshold` (`1e-35f` widened to double).
const K_ZERO_THRESHOLD: f64 = 1e-35f32 as f64;

/// LightGBM reads every input with `|x| <= kZeroThreshold` as exactly 0 before it reaches a
/// tree (its dense-row readers drop such values as zeros), and it places splits around zero
/// at `±kZeroThreshold`. A threshold inside that band is moved to the band's edge on the side
/// zero goes, so `x <= t` sends every value of the band where LightGBM sends 0: for
/// `-kZero <= t < 0` the band goes right (`t` becomes the double just below `-kZero`); for
/// `0 <= t < kZero` it goes left (`t` becomes `kZero`). Other thresholds are unchanged.
fn zero_band_threshold(t: f64) -> f64 {
    if (-K_ZERO_THRESHOLD..0.0).contains(&t) {
        // The next double toward -inf from -kZero (a negative number: add one ulp to the bits).
        f64::from_bits((-K_ZERO_THRESHOLD).to_bits() + 1)
    } else if (0.0..K_ZERO_THRESHOLD).contains(&t) {
        K_ZERO_THRESHOLD
    } else {
        t
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

/// One parsed `Tree=` block.
struct Tree {
    /// Internal nodes `0..num_leaves-1`, then the leaves (leaf `j` at `num_leaves - 1 + j`).
    nodes: Vec<LocalNode>,
    /// Per node: `internal_count`, then `leaf_count` (LightGBM's `pred_contrib` weighs paths
    /// by these data counts, `Tree::TreeSHAP`'s `data_count`); `None` when either is absent.
    covers: Option<Vec<f64>>,
    /// Per node: LightGBM's index of the internal node or of the leaf (`pred_leaf`).
    ids: Vec<i32>,
}

/// Parses one `Tree=` block into local nodes, covers and ids ([`Tree`]).
fn parse_tree(ctx: &Ctx, b: &Block, n_features: usize) -> Result<Tree, ImportError> {
    let tree_name = b.get("Tree").map(|(_, v)| v.trim()).unwrap_or("?");
    let label = |key: &str| format!("Tree={tree_name} {key}");
    let need = |key: &str| -> Result<(usize, &str), ImportError> {
        b.get(key)
            .ok_or_else(|| ctx.invalid(b.line, label(key), "missing"))
    };
    if let Some((ln, v)) = b.get("is_linear") {
        if v.trim() != "0" {
            return Err(ctx.unsupported(format!(
                "linear trees (Tree={tree_name} has is_linear={} at line {ln})",
                v.trim()
            )));
        }
    }
    let (ln, v) = need("num_leaves")?;
    let num_leaves: usize = parse_num(ctx, ln, &label("num_leaves"), v)?;
    let (ln_lv, v) = need("leaf_value")?;
    let leaf_values: Vec<f64> = parse_list(ctx, ln_lv, &label("leaf_value"), v)?;
    if num_leaves == 0 || leaf_values.len() != num_leaves {
        return Err(ctx.invalid(
            ln_lv,
            label("leaf_value"),
            format!("{} values for num_leaves={num_leaves}", leaf_values.len()),
        ));
    }
    if let Some(i) = leaf_values.iter().position(|v| !v.is_finite()) {
        return Err(ctx.invalid(ln_lv, label(&format!("leaf_value[{i}]")), "is not finite"));
    }
    let n_internal = num_leaves - 1;
    let mut nodes: Vec<LocalNode> = Vec::with_capacity(2 * n_internal + 1);
    // Counts: non-negative finite numbers, `n` of them.
    let counts = |key: &str, n: usize| -> Result<Option<Vec<f64>>, ImportError> {
        let Some((ln, v)) = b.get(key) else {
            return Ok(None);
        };
        let xs: Vec<f64> = parse_list(ctx, ln, &label(key), v)?;
        if xs.len() != n {
            return Err(ctx.invalid(
                ln,
                label(key),
                format!(
                    "{} values, expected {n} (num_leaves={num_leaves})",
                    xs.len()
                ),
            ));
        }
        if let Some((i, x)) = xs
            .iter()
            .enumerate()
            .find(|(_, x)| !(x.is_finite() && **x >= 0.0))
        {
            return Err(ctx.invalid(
                ln,
                label(&format!("{key}[{i}]")),
                format!("{x} is not a finite count >= 0"),
            ));
        }
        Ok(Some(xs))
    };
    let leaf_count = counts("leaf_count", num_leaves)?;
    let ids: Vec<i32> = (0..n_internal)
        .chain(0..num_leaves)
        .map(|i| i32::try_from(i).unwrap_or(i32::MAX))
        .collect();
    if n_internal == 0 {
        nodes.push(LocalNode::Leaf(leaf_values.first().copied().unwrap_or(0.0)));
        // A single leaf needs no cover (it is its own root): 0 when the file has none.
        let covers = Some(leaf_count.unwrap_or_else(|| vec![0.0]));
        return Ok(Tree { nodes, covers, ids });
    }
    let internal_count = counts("internal_count", n_internal)?;
    let list_i64 = |key: &str| -> Result<(usize, Vec<i64>), ImportError> {
        let (ln, v) = need(key)?;
        let xs: Vec<i64> = parse_list(ctx, ln, &label(key), v)?;
        if xs.len() != n_internal {
            return Err(ctx.invalid(
                ln,
                label(key),
                format!(
                    "{} values for {n_internal} internal nodes (num_leaves={num_leaves})",
                    xs.len()
                ),
            ));
        }
        Ok((ln, xs))
    };
    let (ln_f, split_feature) = list_i64("split_feature")?;
    let (ln_d, decision_type) = list_i64("decision_type")?;
    let (ln_l, left_child) = list_i64("left_child")?;
    let (ln_r, right_child) = list_i64("right_child")?;
    let (ln_t, v) = need("threshold")?;
    let threshold: Vec<f64> = parse_list(ctx, ln_t, &label("threshold"), v)?;
    if threshold.len() != n_internal {
        return Err(ctx.invalid(
            ln_t,
            label("threshold"),
            format!("{} values for {n_internal} internal nodes", threshold.len()),
        ));
    }
    let num_cat: usize = match b.get("num_cat") {
        Some((ln, v)) => parse_num(ctx, ln, &label("num_cat"), v)?,
        None => 0,
    };
    let (cat_boundaries, cat_threshold, ln_cb, ln_ct) = if num_cat > 0 {
        let (ln_cb, v) = need("cat_boundaries")?;
        let cb: Vec<usize> = parse_list(ctx, ln_cb, &label("cat_boundaries"), v)?;
        let (ln_ct, v) = need("cat_threshold")?;
        let ct: Vec<u32> = parse_list(ctx, ln_ct, &label("cat_threshold"), v)?;
        if cb.len() != num_cat + 1 {
            return Err(ctx.invalid(
                ln_cb,
                label("cat_boundaries"),
                format!(
                    "{} values for num_cat={num_cat} (needs num_cat + 1)",
                    cb.len()
                ),
            ));
        }
        if cb.first() != Some(&0)
            || cb.windows(2).any(|w| w[0] > w[1])
            || cb.last() != Some(&ct.len())
        {
            return Err(ctx.invalid(
                ln_cb,
                label("cat_boundaries"),
                format!(
                    "must rise from 0 to the {} words of cat_threshold",
                    ct.len()
                ),
            ));
        }
        (cb, ct, ln_cb, ln_ct)
    } else {
        (Vec::new(), Vec::new(), 0, 0)
    };
    let _ = ln_ct;

    let child = |c: i64, ln: usize, key: &str, i: usize| -> Result<usize, ImportError> {
        if c >= 0 {
            usize::try_from(c)
                .ok()
                .filter(|&c| c < n_internal)
                .ok_or_else(|| {
                    ctx.invalid(
                        ln,
                        label(&format!("{key}[{i}]")),
                        format!("internal node {c} out of range 0..{n_internal}"),
                    )
                })
        } else {
            let leaf = !c;
            usize::try_from(leaf)
                .ok()
                .filter(|&l| l < num_leaves)
                .map(|l| n_internal + l)
                .ok_or_else(|| {
                    ctx.invalid(
                        ln,
                        label(&format!("{key}[{i}]")),
                        format!("leaf {leaf} (child {c}) out of range 0..{num_leaves}"),
                    )
                })
        }
    };
    for i in 0..n_internal {
        let f = split_feature.get(i).copied().unwrap_or(-1);
        let feature = usize::try_from(f)
            .ok()
            .filter(|&f| f < n_features)
            .ok_or_else(|| {
                ctx.invalid(
                    ln_f,
                    label(&format!("split_feature[{i}]")),
                    format!("feature {f} out of range 0..{n_features}"),
                )
            })?;
        let d = decision_type.get(i).copied().unwrap_or(0);
        if !(0..=15).contains(&d) {
            return Err(ctx.invalid(
                ln_d,
                label(&format!("decision_type[{i}]")),
                format!("{d} is out of range 0..=15"),
            ));
        }
        let l = child(
            left_child.get(i).copied().unwrap_or(0),
            ln_l,
            "left_child",
            i,
        )?;
        let r = child(
            right_child.get(i).copied().unwrap_or(0),
            ln_r,
            "right_child",
            i,
        )?;
        let t = threshold.get(i).copied().unwrap_or(0.0);
        let mut cats = Vec::new();
        let node_flags = if d & 1 != 0 {
            // Categorical: NaN and negatives go right (never "default left").
            let idx = if t >= 0.0 && t.fract() == 0.0 && t < num_cat as f64 {
                t as usize
            } else {
                return Err(ctx.invalid(
                    ln_t,
                    label(&format!("threshold[{i}]")),
                    format!("category set index {t} out of range 0..{num_cat} (num_cat)"),
                ));
            };
            let (lo, hi) = (
                cat_boundaries.get(idx).copied().unwrap_or(0),
                cat_boundaries.get(idx + 1).copied().unwrap_or(0),
            );
            cats = cat_threshold
                .get(lo..hi)
                .ok_or_else(|| {
                    ctx.invalid(
                        ln_cb,
                        label("cat_boundaries"),
                        format!("words {lo}..{hi} out of range"),
                    )
                })?
                .to_vec();
            flags::CATEGORICAL
        } else {
            if t.is_nan() {
                return Err(ctx.invalid(
                    ln_t,
                    label(&format!("threshold[{i}]")),
                    "threshold is NaN",
                ));
            }
            let mut fl = 0;
            if d & 2 != 0 {
                fl |= flags::MISSING_LEFT;
            }
            match (d >> 2) & 3 {
                0 => fl |= flags::NAN_IS_ZERO,
                1 => fl |= flags::ZERO_IS_MISSING | flags::NAN_IS_ZERO,
                2 => {}
                _ => {
                    return Err(ctx.invalid(
                        ln_d,
                        label(&format!("decision_type[{i}]")),
                        format!("{d}: missing type 3 is undefined (0 None, 1 Zero, 2 NaN)"),
                    ))
                }
            }
            fl
        };
        nodes.push(LocalNode::Split {
            feature: feature as i32,
            threshold: if d & 1 != 0 {
                0.0
            } else {
                zero_band_threshold(t)
            },
            left: l,
            right: r,
            flags: node_flags,
            cats,
        });
    }
    nodes.extend(leaf_values.iter().map(|&v| LocalNode::Leaf(v)));
    let covers = match (internal_count, leaf_count) {
        (Some(mut c), Some(l)) => {
            c.extend(l);
            Some(c)
        }
        _ => None,
    };
    Ok(Tree { nodes, covers, ids })
}
