//! The `ai.onnx.ml` operators, with onnxruntime's semantics (the reference every converter is
//! tested against): tree ensembles, linear models, and the classical preprocessing ops.

use std::collections::HashMap;

use mle_format::tree::{flags, Aggregate, Comparison, Precision, TreeEnsembleSpec};
use mle_format::{Attr, ClassLabels, DType};

use super::graph::{class_labels, ColKind, Ctx, Key, NodeCx, Role, Rt, Val, MAX_ROW_ELEMENTS};
use super::tensor::Data;
use crate::error::ImportError;

type R<T> = Result<T, ImportError>;

/// Most targets or classes of one model.
const MAX_TARGETS: usize = 1 << 16;

/// `post_transform` values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Post {
    None,
    Logistic,
    Softmax,
}

fn post_transform(ctx: &Ctx<'_>, nc: &NodeCx<'_>) -> R<Post> {
    let p = ctx.a_str(nc, "post_transform")?;
    match p.as_deref().unwrap_or("NONE") {
        "NONE" => Ok(Post::None),
        "LOGISTIC" => Ok(Post::Logistic),
        "SOFTMAX" => Ok(Post::Softmax),
        "SOFTMAX_ZERO" => Err(ctx.unsupported(
            nc,
            "post_transform SOFTMAX_ZERO (a softmax that skips zero scores) has no executor op",
        )),
        "PROBIT" => Err(ctx.unsupported(
            nc,
            "post_transform PROBIT (the inverse normal CDF) has no executor op",
        )),
        other => Err(ctx.invalid(
            nc,
            "post_transform",
            format!("{other:?} (expected NONE, LOGISTIC, SOFTMAX, SOFTMAX_ZERO or PROBIT)"),
        )),
    }
}

/// The classifier's `[N, F]` input.
fn matrix_input(ctx: &Ctx<'_>, nc: &NodeCx<'_>) -> R<(Rt, usize)> {
    let x = ctx.float_input(nc, 0)?;
    match x.dims.as_slice() {
        [_, f] if *f >= 1 => Ok((x.clone(), *f as usize)),
        d => Err(ctx.unsupported(nc, format!("input of shape {d:?} (expected [N, features])"))),
    }
}

// ----- tree ensembles ---------------------------------------------------------------------

/// `nodes_modes` values.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Leaf,
}

/// The largest value below `t` at `precision` (`x < t` ⟺ `x <= next_down(t)` for `x` of
/// that precision), or `None` for `-inf`/NaN.
fn next_down(t: f64, precision: Precision) -> Option<f64> {
    if t.is_nan() || t == f64::NEG_INFINITY {
        return None;
    }
    Some(match precision {
        Precision::F32 => {
            let t = t as f32;
            let d = if t == 0.0 {
                -f32::from_bits(1)
            } else if t > 0.0 {
                f32::from_bits(t.to_bits() - 1)
            } else {
                f32::from_bits(t.to_bits() + 1)
            };
            f64::from(d)
        }
        Precision::F64 => {
            if t == 0.0 {
                -f64::from_bits(1)
            } else if t > 0.0 {
                f64::from_bits(t.to_bits() - 1)
            } else {
                f64::from_bits(t.to_bits() + 1)
            }
        }
    })
}

struct Trees {
    spec: TreeEnsembleSpec,
    n_trees: usize,
}

/// Reads the `nodes_*` arrays and the leaf weights (`prefix` `target` or `class`) into a
/// `TreeEnsembleSpec` with `n_targets` columns; `column` maps a weight's target/class id to
/// its column (or `None` to refuse it).
fn read_trees(
    ctx: &Ctx<'_>,
    nc: &NodeCx<'_>,
    prefix: &str,
    n_targets: usize,
    n_features: usize,
    precision: Precision,
) -> R<Trees> {
    let ints = |k: &str| -> R<Vec<i64>> {
        ctx.a_ints(nc, k)?
            .ok_or_else(|| ctx.invalid(nc, k, "required attribute missing"))
    };
    let tree_ids = ints("nodes_treeids")?;
    let node_ids = ints("nodes_nodeids")?;
    let features = ints("nodes_featureids")?;
    let true_ids = ints("nodes_truenodeids")?;
    let false_ids = ints("nodes_falsenodeids")?;
    let modes = ctx
        .a_strs(nc, "nodes_modes")?
        .ok_or_else(|| ctx.invalid(nc, "nodes_modes", "required attribute missing"))?;
    let values = ctx.a_float_list(nc, "nodes_values")?.unwrap_or_default();
    let tracks = ctx
        .a_ints(nc, "nodes_missing_value_tracks_true")?
        .unwrap_or_default();
    let n = tree_ids.len();
    if n == 0 {
        return Err(ctx.invalid(nc, "nodes_treeids", "no nodes"));
    }
    for (k, len) in [
        ("nodes_nodeids", node_ids.len()),
        ("nodes_featureids", features.len()),
        ("nodes_truenodeids", true_ids.len()),
        ("nodes_falsenodeids", false_ids.len()),
        ("nodes_modes", modes.len()),
        ("nodes_values", values.len()),
    ] {
        if len != n {
            return Err(ctx.invalid(nc, k, format!("{len} entries, nodes_treeids has {n}")));
        }
    }
    if !tracks.is_empty() && tracks.len() != n {
        return Err(ctx.invalid(
            nc,
            "nodes_missing_value_tracks_true",
            format!("{} entries, nodes_treeids has {n}", tracks.len()),
        ));
    }
    let mut parsed = Vec::with_capacity(n);
    for (i, m) in modes.iter().enumerate() {
        parsed.push(match m.as_str() {
            "BRANCH_LEQ" => Mode::Leq,
            "BRANCH_LT" => Mode::Lt,
            "BRANCH_GTE" => Mode::Gte,
            "BRANCH_GT" => Mode::Gt,
            "LEAF" => Mode::Leaf,
            "BRANCH_EQ" | "BRANCH_NEQ" => {
                return Err(ctx.unsupported(
                    nc,
                    format!(
                        "nodes_modes[{i}] = {m}: equality splits have no exact TreeEnsemble form"
                    ),
                ))
            }
            other => {
                return Err(ctx.invalid(
                    nc,
                    &format!("nodes_modes[{i}]"),
                    format!("{other:?} is not a node mode"),
                ))
            }
        });
    }
    // (tree id, node id) -> index; trees are runs of equal tree ids, rooted at their first node.
    let mut index: HashMap<(i64, i64), usize> = HashMap::with_capacity(n);
    let mut runs: Vec<(i64, usize)> = Vec::new();
    for i in 0..n {
        let (t, id) = (tree_ids[i], node_ids[i]);
        if index.insert((t, id), i).is_some() {
            return Err(ctx.invalid(
                nc,
                &format!("nodes_nodeids[{i}]"),
                format!("node {id} of tree {t} is defined twice"),
            ));
        }
        if runs.last().map(|r| r.0) != Some(t) {
            if runs.iter().any(|r| r.0 == t) {
                return Err(ctx.invalid(
                    nc,
                    &format!("nodes_treeids[{i}]"),
                    format!("the nodes of tree {t} are not contiguous"),
                ));
            }
            runs.push((t, i));
        }
    }
    // Leaf weights.
    let w_tree = ints(&format!("{prefix}_treeids"))?;
    let w_node = ints(&format!("{prefix}_nodeids"))?;
    let w_id = ints(&format!("{prefix}_ids"))?;
    let w_key = format!("{prefix}_weights");
    let w_val = ctx
        .a_float_list(nc, &w_key)?
        .ok_or_else(|| ctx.invalid(nc, &w_key, "required attribute missing"))?;
    let m = w_val.len();
    for (k, len) in [
        (format!("{prefix}_treeids"), w_tree.len()),
        (format!("{prefix}_nodeids"), w_node.len()),
        (format!("{prefix}_ids"), w_id.len()),
    ] {
        if len != m {
            return Err(ctx.invalid(nc, &k, format!("{len} entries, {w_key} has {m}")));
        }
    }
    let mut leaf_vals: HashMap<usize, Vec<f64>> = HashMap::new();
    for j in 0..m {
        let at = index.get(&(w_tree[j], w_node[j])).copied().ok_or_else(|| {
            ctx.invalid(
                nc,
                &format!("{prefix}_nodeids[{j}]"),
                format!("node {} of tree {} does not exist", w_node[j], w_tree[j]),
            )
        })?;
        if parsed[at] != Mode::Leaf {
            return Err(ctx.invalid(
                nc,
                &format!("{prefix}_nodeids[{j}]"),
                format!("node {} of tree {} is not a leaf", w_node[j], w_tree[j]),
            ));
        }
        let col = usize::try_from(w_id[j])
            .ok()
            .filter(|&c| c < n_targets)
            .ok_or_else(|| {
                ctx.invalid(
                    nc,
                    &format!("{prefix}_ids[{j}]"),
                    format!("{} is outside 0..{n_targets}", w_id[j]),
                )
            })?;
        let v = leaf_vals.entry(at).or_insert_with(|| vec![0.0; n_targets]);
        v[col] += w_val[j];
    }
    // Comparison: native when the modes allow it, else `le` with strict splits shifted.
    let branch = |m: &Mode| *m != Mode::Leaf;
    let comparison = if parsed
        .iter()
        .filter(|m| branch(m))
        .all(|m| matches!(m, Mode::Lt | Mode::Gte))
    {
        Comparison::Lt
    } else {
        Comparison::Le
    };
    let leaf_dim = if n_targets == 1 { 1 } else { n_targets };
    let mut spec = TreeEnsembleSpec::new(n_targets, leaf_dim, comparison, precision);
    let zero = vec![0.0; n_targets];
    for &(t, root) in &runs {
        // Depth-first pre-order: (node index, (parent slot, is_left)).
        let mut stack: Vec<(usize, Option<(usize, bool)>)> = vec![(root, None)];
        let mut seen = std::collections::HashSet::new();
        while let Some((i, patch)) = stack.pop() {
            if !seen.insert(i) {
                return Err(ctx.invalid(
                    nc,
                    &format!("nodes_nodeids[{i}]"),
                    format!(
                        "node {} of tree {t} is reached twice (a cycle or a shared child)",
                        node_ids[i]
                    ),
                ));
            }
            let at = match parsed[i] {
                Mode::Leaf => spec.leaf(leaf_vals.get(&i).unwrap_or(&zero)),
                mode => {
                    let f = usize::try_from(features[i])
                        .ok()
                        .filter(|&f| f < n_features)
                        .ok_or_else(|| {
                            ctx.invalid(
                                nc,
                                &format!("nodes_featureids[{i}]"),
                                format!("{} is outside 0..{n_features}", features[i]),
                            )
                        })?;
                    let child = |ids: &[i64], what: &str| -> R<usize> {
                        index.get(&(t, ids[i])).copied().ok_or_else(|| {
                            ctx.invalid(
                                nc,
                                &format!("{what}[{i}]"),
                                format!("node {} of tree {t} does not exist", ids[i]),
                            )
                        })
                    };
                    let yes = child(&true_ids, "nodes_truenodeids")?;
                    let no = child(&false_ids, "nodes_falsenodeids")?;
                    let raw = values[i];
                    let thr = match precision {
                        Precision::F32 => f64::from(raw as f32),
                        Precision::F64 => raw,
                    };
                    if thr.is_nan() {
                        return Err(ctx.invalid(
                            nc,
                            &format!("nodes_values[{i}]"),
                            "a NaN threshold",
                        ));
                    }
                    // (threshold, condition true goes left)
                    let shifted = |ctx: &Ctx<'_>| {
                        next_down(thr, precision).ok_or_else(|| {
                            ctx.unsupported(
                                nc,
                                format!("a strict split at nodes_values[{i}] = {thr} cannot be rewritten as <="),
                            )
                        })
                    };
                    let (threshold, true_left) = match (comparison, mode) {
                        (Comparison::Le, Mode::Leq) => (thr, true),
                        (Comparison::Le, Mode::Gt) => (thr, false),
                        (Comparison::Le, Mode::Lt) => (shifted(ctx)?, true),
                        (Comparison::Le, Mode::Gte) => (shifted(ctx)?, false),
                        (Comparison::Lt, Mode::Lt) => (thr, true),
                        (Comparison::Lt, _) => (thr, false),
                        (_, Mode::Leaf) => (thr, true),
                    };
                    let nan_true = tracks.get(i).copied().unwrap_or(0) != 0;
                    let (left, right) = if true_left { (yes, no) } else { (no, yes) };
                    let missing_left = nan_true == true_left;
                    let fl = if missing_left { flags::MISSING_LEFT } else { 0 };
                    let at = spec.split(f as i32, threshold, 0, 0, fl);
                    stack.push((right, Some((at as usize, false))));
                    stack.push((left, Some((at as usize, true))));
                    at
                }
            };
            if let Some((parent, is_left)) = patch {
                let slot = if is_left {
                    spec.left.get_mut(parent)
                } else {
                    spec.right.get_mut(parent)
                };
                if let Some(s) = slot {
                    *s = at;
                }
            }
        }
        let root_at = spec.n_nodes() - seen.len();
        spec.push_tree(root_at as u32, 0, 1.0);
        if spec.n_nodes() > u32::MAX as usize / 2 {
            return Err(ctx.invalid(nc, "nodes_treeids", "too many nodes"));
        }
    }
    // With leaf_dim = 1 and one target, every tree adds to target 0 (the default).
    Ok(Trees {
        n_trees: runs.len(),
        spec,
    })
}

fn precision_of(x: &Rt) -> Precision {
    if x.onnx_f64 {
        Precision::F64
    } else {
        Precision::F32
    }
}

fn write_trees(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>, spec: &TreeEnsembleSpec, x: &str) -> R<String> {
    let out = ctx.fresh("v");
    let name = format!("{}:trees", nc.label());
    spec.validate_as(&name)
        .map_err(|e| ctx.invalid(nc, "nodes_treeids", e.to_string()))?;
    let node = spec
        .add_unchecked(&mut ctx.b, &name, x, &out)
        .map_err(|e| ctx.invalid(nc, "nodes_treeids", e.to_string()))?;
    ctx.push(node);
    Ok(out)
}

/// `TreeEnsembleRegressor`.
pub fn tree_regressor(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let (x, n_features) = matrix_input(ctx, nc)?;
    let n_targets = ctx.a_int(nc, "n_targets")?.unwrap_or(1);
    let n_targets = usize::try_from(n_targets)
        .ok()
        .filter(|&t| (1..=MAX_TARGETS).contains(&t))
        .ok_or_else(|| {
            ctx.invalid(
                nc,
                "n_targets",
                format!("{n_targets} is outside 1..={MAX_TARGETS}"),
            )
        })?;
    let aggregate = match ctx
        .a_str(nc, "aggregate_function")?
        .as_deref()
        .unwrap_or("SUM")
    {
        "SUM" => Aggregate::Sum,
        "AVERAGE" => Aggregate::Average,
        a @ ("MIN" | "MAX") => {
            return Err(ctx.unsupported(
                nc,
                format!("aggregate_function {a}: TreeEnsemble aggregates by sum or average only"),
            ))
        }
        a => {
            return Err(ctx.invalid(
                nc,
                "aggregate_function",
                format!("{a:?} (expected SUM, AVERAGE, MIN or MAX)"),
            ))
        }
    };
    let post = post_transform(ctx, nc)?;
    if n_targets == 1 && post != Post::None {
        return Err(ctx.unsupported(
            nc,
            "a LOGISTIC or SOFTMAX post_transform on one target (onnxruntime ignores it)",
        ));
    }
    let base = ctx.a_float_list(nc, "base_values")?.unwrap_or_default();
    let mut trees = read_trees(ctx, nc, "target", n_targets, n_features, precision_of(&x))?;
    trees.spec.aggregate = aggregate;
    trees.spec.base_scores = match base.len() {
        0 => vec![0.0; n_targets],
        l if l == n_targets => base,
        l => {
            return Err(ctx.unsupported(
                nc,
                format!("{l} base_values for {n_targets} targets (onnxruntime ignores them)"),
            ))
        }
    };
    let _ = trees.n_trees;
    ctx.model_ops.push(nc.n.op_type.clone());
    let margin = write_trees(ctx, nc, &trees.spec, &x.name)?;
    let out = match post {
        Post::None => margin,
        Post::Logistic => ctx.emit(nc, "Sigmoid", &[&margin], vec![]),
        Post::Softmax => ctx.emit(nc, "Softmax", &[&margin], vec![("axis", Attr::Int(-1))]),
    };
    let v = Rt {
        name: out,
        dtype: DType::F64,
        dims: vec![-1, n_targets as i64],
        onnx_f64: false,
        role: Role::Plain,
    };
    ctx.no_outputs_from(nc, 1)?;
    ctx.define(nc, 0, Val::Rt(v))
}

/// `TreeEnsembleClassifier`: label and probabilities as onnxruntime computes them.
pub fn tree_classifier(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let (x, n_features) = matrix_input(ctx, nc)?;
    let labels = class_labels(ctx, nc, "classlabels_int64s")?;
    let c = labels.len();
    if !(2..=MAX_TARGETS).contains(&c) {
        return Err(ctx.invalid(
            nc,
            "classlabels_int64s",
            format!("{c} classes (expected 2..={MAX_TARGETS})"),
        ));
    }
    let post = post_transform(ctx, nc)?;
    let base = ctx.a_float_list(nc, "base_values")?.unwrap_or_default();
    let ids = ctx.a_ints(nc, "class_ids")?.unwrap_or_default();
    let weights = ctx.a_float_list(nc, "class_weights")?.unwrap_or_default();
    let mut classes: Vec<i64> = ids.clone();
    classes.sort_unstable();
    classes.dedup();
    let precision = precision_of(&x);
    ctx.model_ops.push(nc.n.op_type.clone());
    let (label, proba) = if c == 2 {
        // onnxruntime's binary case: the weights of one class id (0) are the score s.
        if classes != [0] {
            return Err(ctx.unsupported(
                nc,
                format!("a binary classifier with weights for class ids {classes:?} (only class id 0, the positive score, is supported)"),
            ));
        }
        let mut trees = read_trees(ctx, nc, "class", 1, n_features, precision)?;
        trees.spec.base_scores = match base.as_slice() {
            [] => vec![0.0],
            [b] => vec![*b],
            _ => {
                return Err(ctx.unsupported(
                    nc,
                    format!("{} base_values for a binary classifier", base.len()),
                ))
            }
        };
        let all_positive = weights.iter().all(|&w| w >= 0.0);
        let s = write_trees(ctx, nc, &trees.spec, &x.name)?;
        match (all_positive, post) {
            // Probabilities [1 - s, s], label s > 0.5.
            (true, Post::None) => {
                let p = ctx.emit(nc, "BinaryToProba", &[&s], vec![]);
                let l = ctx.emit(nc, "Threshold", &[&s], vec![("threshold", Attr::Float(0.5))]);
                (l, p)
            }
            // Probabilities [sigmoid(-s), sigmoid(s)], label s > 0.
            (false, Post::Logistic) => {
                let sg = ctx.emit(nc, "Sigmoid", &[&s], vec![]);
                let p = ctx.emit(nc, "BinaryToProba", &[&sg], vec![]);
                let l = ctx.emit(nc, "Threshold", &[&s], vec![("threshold", Attr::Float(0.0))]);
                (l, p)
            }
            (true, _) => {
                return Err(ctx.unsupported(
                    nc,
                    "a binary classifier with non-negative weights and a post_transform (onnxruntime returns [1 - s, s] and ignores it)",
                ))
            }
            (false, _) => {
                return Err(ctx.unsupported(
                    nc,
                    "a binary classifier with signed weights and no LOGISTIC post_transform (onnxruntime returns raw scores [-s, s] or [s, -s] by the label)",
                ))
            }
        }
    } else {
        if let Some(&bad) = classes.iter().find(|&&k| k < 0 || k as usize >= c) {
            return Err(ctx.invalid(nc, "class_ids", format!("{bad} is outside 0..{c}")));
        }
        let mut trees = read_trees(ctx, nc, "class", c, n_features, precision)?;
        trees.spec.base_scores = match base.len() {
            0 => {
                // onnxruntime ranks only the classes some reached leaf scored: exact when every
                // class has a weight on every leaf of some tree.
                if !every_class_scored(ctx, nc, c)? {
                    return Err(ctx.unsupported(
                        nc,
                        "a class is not scored by every row (no base_values, and no tree gives it a weight on every leaf): onnxruntime then skips it when choosing the label",
                    ));
                }
                vec![0.0; c]
            }
            l if l == c => base,
            l => return Err(ctx.invalid(nc, "base_values", format!("{l} values for {c} classes"))),
        };
        let margin = write_trees(ctx, nc, &trees.spec, &x.name)?;
        let l = ctx.emit(nc, "ArgMax", &[&margin], vec![]);
        let p = match post {
            Post::None => margin,
            Post::Logistic => ctx.emit(nc, "Sigmoid", &[&margin], vec![]),
            Post::Softmax => ctx.emit(nc, "Softmax", &[&margin], vec![("axis", Attr::Int(-1))]),
        };
        (l, p)
    };
    ctx.define(
        nc,
        0,
        Val::Rt(Rt {
            name: label,
            dtype: DType::I64,
            dims: vec![-1],
            onnx_f64: false,
            role: Role::Label(labels),
        }),
    )?;
    ctx.define(
        nc,
        1,
        Val::Rt(Rt {
            name: proba,
            dtype: DType::F64,
            dims: vec![-1, c as i64],
            onnx_f64: false,
            role: Role::Plain,
        }),
    )
}

/// True when, for every class, some tree has a weight for it on each of its leaves.
fn every_class_scored(ctx: &Ctx<'_>, nc: &NodeCx<'_>, c: usize) -> R<bool> {
    let tree_ids = ctx.a_ints(nc, "nodes_treeids")?.unwrap_or_default();
    let node_ids = ctx.a_ints(nc, "nodes_nodeids")?.unwrap_or_default();
    let modes = ctx.a_strs(nc, "nodes_modes")?.unwrap_or_default();
    let w_tree = ctx.a_ints(nc, "class_treeids")?.unwrap_or_default();
    let w_node = ctx.a_ints(nc, "class_nodeids")?.unwrap_or_default();
    let w_id = ctx.a_ints(nc, "class_ids")?.unwrap_or_default();
    let mut leaves: HashMap<i64, usize> = HashMap::new();
    for ((t, _), m) in tree_ids.iter().zip(&node_ids).zip(&modes) {
        if m == "LEAF" {
            *leaves.entry(*t).or_default() += 1;
        }
    }
    // (tree, class) -> distinct leaves with a weight for the class
    let mut covered: HashMap<(i64, i64), std::collections::HashSet<i64>> = HashMap::new();
    for ((t, n), k) in w_tree.iter().zip(&w_node).zip(&w_id) {
        covered.entry((*t, *k)).or_default().insert(*n);
    }
    Ok((0..c as i64).all(|k| {
        leaves
            .iter()
            .any(|(t, &n)| covered.get(&(*t, k)).is_some_and(|s| s.len() == n))
    }))
}

// ----- linear models ----------------------------------------------------------------------

fn linear_weights(
    ctx: &Ctx<'_>,
    nc: &NodeCx<'_>,
    n_features: usize,
    n_intercepts_key: &str,
) -> R<(Vec<f64>, Vec<f64>, usize)> {
    let coef: Vec<f64> = ctx
        .a_floats(nc, "coefficients")?
        .ok_or_else(|| ctx.invalid(nc, "coefficients", "required attribute missing"))?
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    let intercepts: Vec<f64> = ctx
        .a_floats(nc, "intercepts")?
        .unwrap_or_default()
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    if coef.is_empty() || coef.len() % n_features != 0 {
        return Err(ctx.invalid(
            nc,
            "coefficients",
            format!(
                "{} values is not a multiple of the {n_features} input features",
                coef.len()
            ),
        ));
    }
    let t = coef.len() / n_features;
    if !intercepts.is_empty() && intercepts.len() != t {
        return Err(ctx.invalid(
            nc,
            n_intercepts_key,
            format!(
                "{} intercepts for {t} rows of coefficients",
                intercepts.len()
            ),
        ));
    }
    Ok((coef, intercepts, t))
}

fn linear_model(
    ctx: &mut Ctx<'_>,
    nc: &NodeCx<'_>,
    x: &str,
    coef: Vec<f64>,
    intercepts: Vec<f64>,
    t: usize,
    f: usize,
) -> R<String> {
    let c = ctx.tensor_f64(&[t, f], coef)?;
    let mut attrs = vec![("coef", Attr::Tensor(c))];
    if !intercepts.is_empty() {
        let i = ctx.tensor_f64(&[t], intercepts)?;
        attrs.push(("intercept", Attr::Tensor(i)));
    }
    Ok(ctx.emit(nc, "LinearModel", &[x], attrs))
}

/// `LinearRegressor`.
pub fn linear_regressor(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let (x, f) = matrix_input(ctx, nc)?;
    if post_transform(ctx, nc)? != Post::None {
        return Err(ctx.unsupported(nc, "a post_transform on a LinearRegressor"));
    }
    let (coef, intercepts, t) = linear_weights(ctx, nc, f, "intercepts")?;
    if let Some(targets) = ctx.a_int(nc, "targets")? {
        if targets != t as i64 {
            return Err(ctx.invalid(
                nc,
                "targets",
                format!("{targets}, but the coefficients hold {t} rows"),
            ));
        }
    }
    ctx.model_ops.push(nc.n.op_type.clone());
    let y = linear_model(ctx, nc, &x.name, coef, intercepts, t, f)?;
    ctx.define(
        nc,
        0,
        Val::Rt(Rt {
            name: y,
            dtype: DType::F64,
            dims: vec![-1, t as i64],
            onnx_f64: false,
            role: Role::Plain,
        }),
    )
}

/// `LinearClassifier`, as onnxruntime: label from the raw scores (argmax, or `s > 0` for one
/// score column), probabilities the post-transformed scores.
pub fn linear_classifier(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let (x, f) = matrix_input(ctx, nc)?;
    let labels = class_labels(ctx, nc, "classlabels_ints")?;
    let post = post_transform(ctx, nc)?;
    let (coef, intercepts, t) = linear_weights(ctx, nc, f, "intercepts")?;
    if intercepts.len() != t {
        return Err(ctx.invalid(nc, "intercepts", format!("{} intercepts for {t} rows of coefficients (onnxruntime counts classes by intercepts)", intercepts.len())));
    }
    let c = labels.len();
    ctx.model_ops.push(nc.n.op_type.clone());
    let scores = linear_model(ctx, nc, &x.name, coef, intercepts, t, f)?;
    let (label, proba, width) = if t == 1 {
        if c != 2 {
            return Err(ctx.invalid(
                nc,
                "classlabels_ints",
                format!("one score column needs 2 class labels, found {c}"),
            ));
        }
        if post != Post::Logistic {
            return Err(ctx.unsupported(nc, "one score column without a LOGISTIC post_transform"));
        }
        let sg = ctx.emit(nc, "Sigmoid", &[&scores], vec![]);
        let p = ctx.emit(nc, "BinaryToProba", &[&sg], vec![]);
        let l = ctx.emit(
            nc,
            "Threshold",
            &[&scores],
            vec![("threshold", Attr::Float(0.0))],
        );
        (l, p, 2)
    } else {
        if t != c {
            return Err(ctx.invalid(
                nc,
                "intercepts",
                format!("{t} score columns for {c} class labels"),
            ));
        }
        let l = ctx.emit(nc, "ArgMax", &[&scores], vec![]);
        let p = match post {
            Post::None => scores,
            Post::Logistic => ctx.emit(nc, "Sigmoid", &[&scores], vec![]),
            Post::Softmax => ctx.emit(nc, "Softmax", &[&scores], vec![("axis", Attr::Int(-1))]),
        };
        (l, p, t)
    };
    ctx.define(
        nc,
        0,
        Val::Rt(Rt {
            name: label,
            dtype: DType::I64,
            dims: vec![-1],
            onnx_f64: false,
            role: Role::Label(labels),
        }),
    )?;
    ctx.define(
        nc,
        1,
        Val::Rt(Rt {
            name: proba,
            dtype: DType::F64,
            dims: vec![-1, width as i64],
            onnx_f64: false,
            role: Role::Plain,
        }),
    )
}

// ----- preprocessing ----------------------------------------------------------------------

/// A per-feature list of length `f` (or 1, broadcast).
fn per_feature(ctx: &Ctx<'_>, nc: &NodeCx<'_>, key: &str, v: Vec<f64>, f: usize) -> R<Vec<f64>> {
    match v.len() {
        1 => Ok(vec![v[0]; f]),
        l if l == f => Ok(v),
        l => Err(ctx.invalid(nc, key, format!("{l} values for {f} features"))),
    }
}

fn classical_out(_x: &Rt, name: String, dims: Vec<i64>) -> Val {
    Val::Rt(Rt {
        name,
        dtype: DType::F64,
        dims,
        onnx_f64: false,
        role: Role::Plain,
    })
}

/// `Scaler`: `(x - offset) * scale`.
pub fn scaler(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let (x, f) = matrix_input(ctx, nc)?;
    let list = |ctx: &Ctx<'_>, k: &str, d: f64| -> R<Vec<f64>> {
        let v: Vec<f64> = ctx
            .a_floats(nc, k)?
            .map(|v| v.iter().map(|&x| f64::from(x)).collect())
            .unwrap_or_else(|| vec![d]);
        per_feature(ctx, nc, k, v, f)
    };
    let offset = list(ctx, "offset", 0.0)?;
    let scale = list(ctx, "scale", 1.0)?;
    let o = ctx.tensor_f64(&[f], offset)?;
    let s = ctx.tensor_f64(&[f], scale)?;
    let y = ctx.emit(
        nc,
        "Scaler",
        &[&x.name],
        vec![("offset", Attr::Tensor(o)), ("scale", Attr::Tensor(s))],
    );
    ctx.define(nc, 0, classical_out(&x, y, x.dims.clone()))
}

/// `Normalizer` (`L1`, `L2`; `MAX` divides by the signed maximum in onnxruntime and is refused).
pub fn normalizer(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let (x, _) = matrix_input(ctx, nc)?;
    let norm = match ctx.a_str(nc, "norm")?.as_deref().unwrap_or("MAX") {
        "L1" => "l1",
        "L2" => "l2",
        "MAX" => {
            return Err(ctx.unsupported(
                nc,
                "norm MAX (onnxruntime divides by the largest signed value; the Normalizer op by the largest absolute value)",
            ))
        }
        n => return Err(ctx.invalid(nc, "norm", format!("{n:?} (expected MAX, L1 or L2)"))),
    };
    let y = ctx.emit(
        nc,
        "Normalizer",
        &[&x.name],
        vec![("norm", Attr::Str(norm.into()))],
    );
    ctx.define(nc, 0, classical_out(&x, y, x.dims.clone()))
}

/// `Imputer` with float values replacing NaN.
pub fn imputer(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let (x, f) = matrix_input(ctx, nc)?;
    let vals: Vec<f64> = ctx
        .a_floats(nc, "imputed_value_floats")?
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ctx.unsupported(nc, "imputed_value_int64s (integer imputation) is not supported; imputed_value_floats is required"))?
        .iter()
        .map(|&x| f64::from(x))
        .collect();
    let vals = per_feature(ctx, nc, "imputed_value_floats", vals, f)?;
    let replaced = ctx.a_float(nc, "replaced_value_float")?.unwrap_or(0.0);
    if !replaced.is_nan() {
        return Err(ctx.unsupported(
            nc,
            format!("replaced_value_float = {replaced}: the Imputer op also replaces NaN, which onnxruntime keeps unless the replaced value is NaN"),
        ));
    }
    let v = ctx.tensor_f64(&[f], vals)?;
    let y = ctx.emit(nc, "Imputer", &[&x.name], vec![("values", Attr::Tensor(v))]);
    ctx.define(nc, 0, classical_out(&x, y, x.dims.clone()))
}

/// `Binarizer` of one column: `x > threshold ? 1 : 0`.
pub fn binarizer(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let (x, f) = matrix_input(ctx, nc)?;
    if f != 1 {
        return Err(ctx.unsupported(nc, format!("{f} columns (Threshold decides one column)")));
    }
    let t = ctx.a_float(nc, "threshold")?.unwrap_or(0.0);
    let i = ctx.emit(
        nc,
        "Threshold",
        &[&x.name],
        vec![("threshold", Attr::Float(f64::from(t)))],
    );
    let c = ctx.emit(nc, "Cast", &[&i], vec![("to", Attr::Str("f64".into()))]);
    let y = ctx.emit(
        nc,
        "Reshape",
        &[&c],
        vec![("shape", Attr::Ints(vec![-1, 1]))],
    );
    ctx.define(nc, 0, classical_out(&x, y, vec![-1, 1]))
}

/// `FeatureVectorizer`: concatenation of `[N, k]` inputs.
pub fn feature_vectorizer(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let dims = ctx.a_ints(nc, "inputdimensions")?.unwrap_or_default();
    let mut parts = Vec::new();
    for k in 0..nc.n.input.len() {
        let r = ctx.float_input(nc, k)?;
        let w = match r.dims.as_slice() {
            [_, w] => *w,
            d => return Err(ctx.unsupported(nc, format!("input[{k}] of shape {d:?}"))),
        };
        if let Some(&want) = dims.get(k) {
            if want != w {
                return Err(ctx.unsupported(
                    nc,
                    format!("inputdimensions[{k}] = {want} for an input of width {w} (padding or truncation)"),
                ));
            }
        }
        parts.push(r);
    }
    let Some(first) = parts.first().cloned() else {
        return Err(ctx.invalid(nc, "input", "no inputs"));
    };
    if parts.len() == 1 {
        return ctx.define(
            nc,
            0,
            Val::Rt(first.derived(first.name.clone(), first.dims.clone())),
        );
    }
    let total = parts
        .iter()
        .try_fold(0i64, |a, p| a.checked_add(*p.dims.get(1).unwrap_or(&0)))
        .ok_or_else(|| ctx.invalid(nc, "input", "widths overflow"))?;
    let mut names = Vec::new();
    for p in &parts {
        names.push(if p.dtype == DType::F64 {
            p.name.clone()
        } else {
            ctx.emit(
                nc,
                "Cast",
                &[&p.name],
                vec![("to", Attr::Str("f64".into()))],
            )
        });
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let y = ctx.emit(nc, "Concat", &refs, vec![("axis", Attr::Int(1))]);
    ctx.define(nc, 0, classical_out(&first, y, vec![-1, total]))
}

/// `ArrayFeatureExtractor`: class labels looked up by a class index (the converters' label
/// output), or the identity selection of every column.
pub fn array_feature_extractor(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    match (ctx.input(nc, 0)?, ctx.input(nc, 1)?) {
        (Val::Const(classes), Val::Rt(idx)) => {
            let Role::Label(ClassLabels::Int(ref cur)) = idx.role else {
                return Err(ctx.unsupported(nc, "indices that are not a class index"));
            };
            let n = classes.len();
            if classes.dims.iter().filter(|&&d| d != 1).count() > 1
                || n != cur.len()
                || cur.iter().enumerate().any(|(i, &v)| v != i as i64)
            {
                return Err(ctx.unsupported(
                    nc,
                    format!(
                        "a lookup of {n} constants by an index over {} classes",
                        cur.len()
                    ),
                ));
            }
            let labels = match classes.data {
                Data::I64(v) => ClassLabels::Int(v),
                Data::Str(v) => ClassLabels::Str(v),
                _ => return Err(ctx.unsupported(nc, "float class labels")),
            };
            ctx.define(
                nc,
                0,
                Val::Rt(Rt {
                    role: Role::Label(labels),
                    ..idx
                }),
            )
        }
        (Val::Rt(x), Val::Const(ix)) => {
            let Some(w) = x.dims.get(1).copied().filter(|_| x.rank() == 2) else {
                return Err(ctx.unsupported(nc, "column selection of a value that is not [N, F]"));
            };
            let identity = ix.to_i64().is_some_and(|v| {
                v.len() == w as usize && v.iter().enumerate().all(|(i, &k)| k == i as i64)
            });
            if !identity {
                return Err(ctx.unsupported(nc, "selecting a subset of columns has no executor op"));
            }
            ctx.define(nc, 0, Val::Rt(x))
        }
        (Val::Cols { kind, cols }, Val::Const(ix)) => {
            let ix = selected_columns(ctx, nc, &ix, cols.len() as i64)?;
            let cols = ix
                .iter()
                .map(|&i| {
                    usize::try_from(i)
                        .ok()
                        .and_then(|i| cols.get(i).copied())
                        .ok_or_else(|| ctx.invalid(nc, "input[1]", format!("index {i}")))
                })
                .collect::<R<Vec<usize>>>()?;
            ctx.define(nc, 0, Val::Cols { kind, cols })
        }
        _ => Err(ctx.unsupported(nc, "this combination of constant and runtime inputs")),
    }
}

/// The constant column indices of an `ArrayFeatureExtractor` over a value `w` wide: a scalar
/// or a 1-D list, each in `0..w` (onnxruntime refuses others).
fn selected_columns(
    ctx: &Ctx<'_>,
    nc: &NodeCx<'_>,
    ix: &super::tensor::Const,
    w: i64,
) -> R<Vec<i64>> {
    let v = ix
        .to_i64()
        .filter(|_| ix.dims.len() <= 1)
        .ok_or_else(|| ctx.unsupported(nc, "indices that are not a 1-D int64 constant"))?;
    if v.is_empty() || v.len() > MAX_ROW_ELEMENTS as usize {
        return Err(ctx.invalid(nc, "input[1]", format!("{} indices", v.len())));
    }
    if let Some(bad) = v.iter().find(|&&i| i < 0 || i >= w) {
        return Err(ctx.invalid(
            nc,
            "input[1]",
            format!("index {bad} outside a value of {w} columns"),
        ));
    }
    Ok(v.to_vec())
}

/// `OneHotEncoder` (`cats_strings` over a string graph input, `cats_int64s` over an int64
/// one): the input's columns join a `Lookup` vocabulary (an unseen category is code `n`) and
/// each column becomes a `OneHot` op; the output is onnxruntime's `[N, k, C]`. `zeros = 1`: an
/// unknown category is an all-zero row; `zeros = 0`: onnxruntime raises, so the `Lookup`
/// refuses it (an input error naming the feature). A missing value (NULL, which onnxruntime
/// cannot be given) is an all-zero row.
pub fn one_hot_encoder(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let strs = ctx.a_strs(nc, "cats_strings")?.filter(|v| !v.is_empty());
    let ints = ctx.a_ints(nc, "cats_int64s")?.filter(|v| !v.is_empty());
    let zeros = ctx.a_int(nc, "zeros")?.unwrap_or(1);
    if zeros != 0 && zeros != 1 {
        return Err(ctx.unsupported(nc, format!("zeros = {zeros} (0 or 1)")));
    }
    let (cats, kind): (Vec<Key>, ColKind) = match (strs, ints) {
        (Some(s), None) => (s.into_iter().map(Key::S).collect(), ColKind::Str),
        (None, Some(i)) => (i.into_iter().map(Key::I).collect(), ColKind::Int),
        (Some(_), Some(_)) => {
            return Err(ctx.invalid(
                nc,
                "cats_strings",
                "both cats_strings and cats_int64s are given",
            ))
        }
        (None, None) => {
            return Err(ctx.invalid(
                nc,
                "cats_strings",
                "no categories (cats_strings or cats_int64s)",
            ))
        }
    };
    let cols = match ctx.input(nc, 0)? {
        Val::Cols { kind: k, cols } if k == kind => cols,
        Val::Cols { .. } => {
            return Err(ctx.unsupported(
                nc,
                "categories of one type over an input of the other (string / int64)",
            ))
        }
        Val::Rt(_) => {
            return Err(ctx.unsupported(
                nc,
                "a float or computed input (only string and int64 graph inputs are encoded)",
            ))
        }
        _ => return Err(ctx.unsupported(nc, "a constant input")),
    };
    let w = cats.len() as i64;
    let k = cols.len() as i64;
    if k.checked_mul(w).is_none_or(|p| p > MAX_ROW_ELEMENTS) {
        return Err(ctx.unsupported(
            nc,
            format!("{k} columns of {w} categories (at most {MAX_ROW_ELEMENTS} values per row)"),
        ));
    }
    let mut parts = Vec::with_capacity(cols.len());
    for &col in &cols {
        let slots = ctx.encode_column(nc, col, &cats, zeros == 0)?;
        let t = ctx.tensor_i32(slots)?;
        let src = ctx.source.clone();
        parts.push(ctx.emit(
            nc,
            "OneHot",
            &[&src],
            vec![
                ("feature", Attr::Int(col as i64)),
                ("n_columns", Attr::Int(w)),
                ("slots", Attr::Tensor(t)),
                ("missing", Attr::Int(-1)),
                ("unknown", Attr::Int(-1)),
            ],
        ));
    }
    let joined = match parts.as_slice() {
        [one] => one.clone(),
        _ => {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            ctx.emit(nc, "Concat", &refs, vec![("axis", Attr::Int(1))])
        }
    };
    let y = ctx.emit(
        nc,
        "Reshape",
        &[&joined],
        vec![("shape", Attr::Ints(vec![-1, k, w]))],
    );
    ctx.define(
        nc,
        0,
        Val::Rt(Rt {
            name: y,
            dtype: DType::F64,
            dims: vec![-1, k, w],
            onnx_f64: false,
            role: Role::Plain,
        }),
    )
}

/// `LabelEncoder` (opset 2+: `keys_strings` / `keys_int64s` → `values_int64s` /
/// `values_floats`, `default_int64` / `default_float`) and `CategoryMapper` (`cats_strings` →
/// `cats_int64s`, `default_int64`) over a string or int64 graph input: the keys join the
/// column's `Lookup` vocabulary and each column becomes a `CategoryMap` of one value per code;
/// an unknown key (and a NULL, which onnxruntime cannot be given) gives the default. Keys
/// given twice, string outputs, float keys and the tensor forms of opset 4 are refused.
pub fn label_encoder(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let mapper = nc.n.op_type == "CategoryMapper";
    let (keys, values, default, int_out): (Vec<Key>, Vec<f64>, f64, bool) = if mapper {
        let s = ctx.a_strs(nc, "cats_strings")?.unwrap_or_default();
        let i = ctx.a_ints(nc, "cats_int64s")?.unwrap_or_default();
        if s.len() != i.len() || s.is_empty() {
            return Err(ctx.invalid(
                nc,
                "cats_strings",
                format!("{} strings for {} integers", s.len(), i.len()),
            ));
        }
        if !matches!(
            ctx.input(nc, 0)?,
            Val::Cols {
                kind: ColKind::Str,
                ..
            }
        ) {
            return Err(ctx.unsupported(
                nc,
                "an input other than a string graph input (int64 → string gives strings)",
            ));
        }
        let default = ctx.a_int(nc, "default_int64")?.unwrap_or(-1);
        (
            s.into_iter().map(Key::S).collect(),
            int_values(ctx, nc, &i)?,
            int_value(ctx, nc, default)?,
            true,
        )
    } else {
        if nc.opset < 2 {
            return Err(ctx.unsupported(nc, "opset 1 (classes_strings)"));
        }
        for t in [
            "keys_tensor",
            "values_tensor",
            "default_tensor",
            "keys_floats",
        ] {
            if nc.n.attribute.iter().any(|a| a.name == t) {
                return Err(ctx.unsupported(nc, format!("attribute {t}")));
            }
        }
        if nc.n.attribute.iter().any(|a| a.name == "values_strings") {
            return Err(ctx.unsupported(nc, "string outputs (values_strings)"));
        }
        let ks = ctx.a_strs(nc, "keys_strings")?.filter(|v| !v.is_empty());
        let ki = ctx.a_ints(nc, "keys_int64s")?.filter(|v| !v.is_empty());
        let keys: Vec<Key> = match (ks, ki) {
            (Some(s), None) => s.into_iter().map(Key::S).collect(),
            (None, Some(i)) => i.into_iter().map(Key::I).collect(),
            _ => {
                return Err(ctx.invalid(
                    nc,
                    "keys_strings",
                    "exactly one of keys_strings and keys_int64s is needed",
                ))
            }
        };
        let vi = ctx.a_ints(nc, "values_int64s")?.filter(|v| !v.is_empty());
        let vf = ctx.a_floats(nc, "values_floats")?.filter(|v| !v.is_empty());
        let (values, default, int_out) = match (vi, vf) {
            (Some(i), None) => (
                int_values(ctx, nc, &i)?,
                int_value(ctx, nc, ctx.a_int(nc, "default_int64")?.unwrap_or(-1))?,
                true,
            ),
            (None, Some(f)) => (
                f.iter().map(|&x| f64::from(x)).collect(),
                f64::from(ctx.a_float(nc, "default_float")?.unwrap_or(-0.0)),
                false,
            ),
            _ => {
                return Err(ctx.invalid(
                    nc,
                    "values_int64s",
                    "exactly one of values_int64s and values_floats is needed",
                ))
            }
        };
        (keys, values, default, int_out)
    };
    if keys.len() != values.len() {
        return Err(ctx.invalid(
            nc,
            "values",
            format!("{} keys for {} values", keys.len(), values.len()),
        ));
    }
    if keys.iter().collect::<std::collections::HashSet<_>>().len() != keys.len() {
        return Err(ctx.unsupported(nc, "a key given twice"));
    }
    let kind = match keys.first() {
        Some(Key::I(_)) => ColKind::Int,
        _ => ColKind::Str,
    };
    let cols = match ctx.input(nc, 0)? {
        Val::Cols { kind: k, cols } if k == kind => cols,
        Val::Cols { .. } => {
            return Err(ctx.unsupported(
                nc,
                "keys of one type over an input of the other (string / int64)",
            ))
        }
        _ => return Err(ctx.unsupported(nc, "an input other than a string or int64 graph input")),
    };
    let mut parts = Vec::with_capacity(cols.len());
    for &col in &cols {
        let slots = ctx.encode_column(nc, col, &keys, false)?;
        let table: Vec<f64> = slots
            .iter()
            .map(|&s| {
                usize::try_from(s)
                    .ok()
                    .and_then(|s| values.get(s).copied())
                    .unwrap_or(default)
            })
            .collect();
        let n = table.len();
        let t = ctx.tensor_f64(&[n, 1], table)?;
        let d = ctx.tensor_f64(&[1], vec![default])?;
        let src = ctx.source.clone();
        parts.push(ctx.emit(
            nc,
            "CategoryMap",
            &[&src],
            vec![
                ("feature", Attr::Int(col as i64)),
                ("table", Attr::Tensor(t)),
                ("missing", Attr::Tensor(d.clone())),
                ("unknown", Attr::Tensor(d)),
            ],
        ));
    }
    let y = match parts.as_slice() {
        [one] => one.clone(),
        _ => {
            let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
            ctx.emit(nc, "Concat", &refs, vec![("axis", Attr::Int(1))])
        }
    };
    ctx.define(
        nc,
        0,
        Val::Rt(Rt {
            name: y,
            dtype: DType::F64,
            dims: vec![-1, cols.len() as i64],
            onnx_f64: false,
            role: if int_out { Role::Int } else { Role::Plain },
        }),
    )
}

/// An int64 value that f64 holds exactly (|v| ≤ 2⁵³).
fn int_value(ctx: &Ctx<'_>, nc: &NodeCx<'_>, v: i64) -> R<f64> {
    if v.unsigned_abs() > 1 << 53 {
        return Err(ctx.unsupported(nc, format!("the value {v} (beyond 2^53)")));
    }
    Ok(v as f64)
}

fn int_values(ctx: &Ctx<'_>, nc: &NodeCx<'_>, v: &[i64]) -> R<Vec<f64>> {
    v.iter().map(|&x| int_value(ctx, nc, x)).collect()
}

/// `ZipMap`: the probabilities, labelled (the output becomes `probabilities`).
pub fn zipmap(ctx: &mut Ctx<'_>, nc: &NodeCx<'_>) -> R<()> {
    let p = ctx.float_input(nc, 0)?;
    ctx.define(
        nc,
        0,
        Val::Rt(Rt {
            role: Role::Proba,
            ..p
        }),
    )
}
