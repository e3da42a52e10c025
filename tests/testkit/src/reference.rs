//! A reference interpreter of `docs/OPS.md`: plain, slow and written to be read against the
//! document, one row and one tree at a time. The executor's bit-identity tests compare
//! against it, and the importers' tests run their graphs through it beside the executor, so
//! that a disagreement points at the side that departs from the contract.
//!
//! Covered: `TreeEnsemble` (exactly, bit for bit: trees summed in tree order from `0.0`, then
//! averaged, then the base score added), the classical ops `Scaler`, `Imputer`, `Normalizer`,
//! `LinearModel`, the post-transforms `Sigmoid`, `Exp`, `Softmax`, `BinaryToProba`, `ArgMax`,
//! `Threshold`, and `Identity`, `Reshape`, `Cast`. Values are f64, row-major; `Cast` to f32
//! rounds. Dense f32 ops are not covered (their tests use per-op references with tolerances).
//!
//! Everything here panics, with a message, on a graph it cannot read: it is a test oracle for
//! well-formed graphs, not a validator.

use std::collections::BTreeMap;

use mle_format::tree::{attr, flags};
use mle_format::{Attr, Element, MleFile, Node};

/// The zero band of `flags::ZERO_IS_MISSING`: `|x| <= 1e-35f32` widened to f64 (LightGBM's
/// `kZeroThreshold`).
pub const ZERO_BAND: f64 = 1e-35f32 as f64;

/// A runtime value: `rows × width` f64, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The values, row after row.
    pub data: Vec<f64>,
    /// Values per row.
    pub width: usize,
}

impl Value {
    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.data.len().checked_div(self.width).unwrap_or(0)
    }

    /// Row `r`.
    pub fn row(&self, r: usize) -> &[f64] {
        &self.data[r * self.width..(r + 1) * self.width]
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> Value {
        Value {
            data: self.data.iter().map(|&v| f(v)).collect(),
            width: self.width,
        }
    }

    fn map_rows(&self, width: usize, f: impl Fn(&[f64]) -> Vec<f64>) -> Value {
        let mut data = Vec::with_capacity(self.rows() * width);
        for r in 0..self.rows() {
            let out = f(self.row(r));
            assert_eq!(out.len(), width, "reference: a row of {} values", out.len());
            data.extend(out);
        }
        Value { data, width }
    }
}

fn tensor<T: Element + Copy>(file: &MleFile, node: &Node, key: &str) -> Option<Vec<T>> {
    match node.attr(key) {
        None => None,
        Some(Attr::Tensor(name)) => Some(
            file.tensor_as::<T>(name)
                .unwrap_or_else(|e| panic!("node {}: tensor {key}: {e}", node.name))
                .to_vec(),
        ),
        Some(other) => panic!("node {}: {key} is {other:?}, not a tensor", node.name),
    }
}

/// A float tensor as f64: f64 tensors exactly, f32 / f16 / quantized ones widened (as the
/// executor dequantizes them).
fn tensor_f64(file: &MleFile, node: &Node, key: &str) -> Option<Vec<f64>> {
    let name = match node.attr(key)? {
        Attr::Tensor(name) => name,
        other => panic!("node {}: {key} is {other:?}, not a tensor", node.name),
    };
    if let Ok(v) = file.tensor_as::<f64>(name) {
        return Some(v.to_vec());
    }
    let v = file
        .tensor_f32(name)
        .unwrap_or_else(|e| panic!("node {}: tensor {key}: {e}", node.name));
    Some(v.iter().map(|&x| x as f64).collect())
}

fn string<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    match node.attr(key)? {
        Attr::Str(s) => Some(s),
        other => panic!("node {}: {key} is {other:?}, not a string", node.name),
    }
}

fn int(node: &Node, key: &str) -> Option<i64> {
    match node.attr(key)? {
        Attr::Int(i) => Some(*i),
        other => panic!("node {}: {key} is {other:?}, not an integer", node.name),
    }
}

fn float(node: &Node, key: &str) -> Option<f64> {
    match node.attr(key)? {
        Attr::Float(f) => Some(*f),
        Attr::Int(i) => Some(*i as f64),
        other => panic!("node {}: {key} is {other:?}, not a float", node.name),
    }
}

fn missing<T>(node: &Node, key: &str) -> T {
    panic!("node {}: missing {key}", node.name)
}

/// A `TreeEnsemble` node read from a file: the arrays of `docs/OPS.md` § `TreeEnsemble`.
#[derive(Debug, Clone)]
pub struct Trees {
    n_targets: usize,
    leaf_dim: usize,
    roots: Vec<u32>,
    targets: Option<Vec<u32>>,
    weights: Option<Vec<f64>>,
    feature: Vec<i32>,
    threshold: Vec<f64>,
    left: Vec<u32>,
    right: Vec<u32>,
    flags: Vec<u8>,
    leaf_values: Vec<f64>,
    /// `comparison = "lt"`.
    lt: bool,
    /// `input_precision = "f32"`.
    round_to_f32: bool,
    /// `aggregate = "average"`.
    average: bool,
    base_scores: Vec<f64>,
    cat_offsets: Vec<u32>,
    cat_bits: Vec<u32>,
    /// `categorical_members = "left"`.
    members_left: bool,
    /// `categorical_rule = "xgboost"`: a negative (rounded) `x` is no category.
    negative_invalid: bool,
    /// `node_cover`, when present.
    node_cover: Option<Vec<f64>>,
}

impl Trees {
    /// Reads the node `node` of `file`.
    pub fn from_node(file: &MleFile, node: &Node) -> Trees {
        assert_eq!(node.op, "TreeEnsemble", "node {}", node.name);
        let n_targets =
            int(node, attr::N_TARGETS).unwrap_or_else(|| missing(node, attr::N_TARGETS)) as usize;
        let choice = |k: &str, options: [&str; 2], default: Option<&str>| -> bool {
            let v = string(node, k)
                .or(default)
                .unwrap_or_else(|| missing(node, k));
            assert!(options.contains(&v), "node {}: {k} = {v:?}", node.name);
            v == options[1]
        };
        Trees {
            n_targets,
            leaf_dim: int(node, attr::LEAF_DIM).unwrap_or(1) as usize,
            roots: tensor(file, node, attr::TREE_ROOTS)
                .unwrap_or_else(|| missing(node, attr::TREE_ROOTS)),
            targets: tensor(file, node, attr::TREE_TARGETS),
            weights: tensor(file, node, attr::TREE_WEIGHTS),
            feature: tensor(file, node, attr::FEATURE)
                .unwrap_or_else(|| missing(node, attr::FEATURE)),
            threshold: tensor(file, node, attr::THRESHOLD)
                .unwrap_or_else(|| missing(node, attr::THRESHOLD)),
            left: tensor(file, node, attr::LEFT).unwrap_or_else(|| missing(node, attr::LEFT)),
            right: tensor(file, node, attr::RIGHT).unwrap_or_else(|| missing(node, attr::RIGHT)),
            flags: tensor(file, node, attr::FLAGS).unwrap_or_else(|| missing(node, attr::FLAGS)),
            leaf_values: tensor(file, node, attr::LEAF_VALUES)
                .unwrap_or_else(|| missing(node, attr::LEAF_VALUES)),
            lt: choice(attr::COMPARISON, ["le", "lt"], None),
            round_to_f32: choice(attr::INPUT_PRECISION, ["f64", "f32"], None),
            average: choice(attr::AGGREGATE, ["sum", "average"], Some("sum")),
            base_scores: match node.attr(attr::BASE_SCORES) {
                None => vec![0.0; n_targets],
                Some(Attr::Floats(v)) => v.clone(),
                Some(other) => panic!("node {}: base_scores is {other:?}", node.name),
            },
            cat_offsets: tensor(file, node, attr::CAT_OFFSETS).unwrap_or_default(),
            cat_bits: tensor(file, node, attr::CAT_BITS).unwrap_or_default(),
            members_left: choice(attr::CATEGORICAL_MEMBERS, ["right", "left"], Some("left")),
            negative_invalid: choice(
                attr::CATEGORICAL_RULE,
                ["lightgbm", "xgboost"],
                Some("lightgbm"),
            ),
            node_cover: tensor(file, node, attr::NODE_COVER),
        }
    }

    /// Reads the first `TreeEnsemble` node of `file`.
    pub fn from_file(file: &MleFile) -> Trees {
        let node = file
            .graph()
            .nodes
            .iter()
            .find(|n| n.op == "TreeEnsemble")
            .expect("the graph has a TreeEnsemble node");
        Trees::from_node(file, node)
    }

    /// Columns of the output.
    pub fn n_targets(&self) -> usize {
        self.n_targets
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// `x` rounded to the node's `input_precision`.
    fn round(&self, x: f64) -> f64 {
        if self.round_to_f32 {
            x as f32 as f64
        } else {
            x
        }
    }

    /// Whether row `x` goes left at split node `i`.
    fn goes_left(&self, i: usize, x: &[f64]) -> bool {
        let fl = self.flags[i];
        let missing_left = fl & flags::MISSING_LEFT != 0;
        let mut v = x[self.feature[i] as usize];
        if fl & flags::CATEGORICAL != 0 {
            // NaN follows bit 1; otherwise the category is `x` rounded, truncated toward zero
            // (under `categorical_rule = xgboost` a negative rounded `x` is none).
            if v.is_nan() {
                return missing_left;
            }
            let r = self.round(v);
            let c = if self.negative_invalid && r < 0.0 {
                -1.0
            } else {
                r.trunc()
            };
            let words =
                &self.cat_bits[self.cat_offsets[i] as usize..self.cat_offsets[i + 1] as usize];
            let member = if c < 0.0 || c >= 32.0 * words.len() as f64 {
                false
            } else {
                let c = c as usize;
                words[c / 32] >> (c % 32) & 1 == 1
            };
            // Members go to the side `categorical_members` names, the others to the other.
            return member == self.members_left;
        }
        // 1. NaN is zero (bit 4).
        if fl & flags::NAN_IS_ZERO != 0 && v.is_nan() {
            v = 0.0;
        }
        // 2. Missing: NaN, or zero under bit 3; it goes left when bit 1 is set.
        if v.is_nan() || (fl & flags::ZERO_IS_MISSING != 0 && v.abs() <= ZERO_BAND) {
            return missing_left;
        }
        // 3. Compared, rounded to the input precision.
        let t = self.threshold[i];
        if self.lt {
            self.round(v) < t
        } else {
            self.round(v) <= t
        }
    }

    /// The leaf tree `k` sends row `x` to (a global node index).
    pub fn leaf_of(&self, k: usize, x: &[f64]) -> usize {
        let mut i = self.roots[k] as usize;
        while self.flags[i] & flags::LEAF == 0 {
            i = if self.goes_left(i, x) {
                self.left[i]
            } else {
                self.right[i]
            } as usize;
        }
        i
    }

    /// The ensemble's output for one row (`n_targets` values; pass f32 inputs widened).
    pub fn row(&self, x: &[f64]) -> Vec<f64> {
        let nt = self.n_targets;
        let mut sum = vec![0.0f64; nt];
        let mut count = vec![0usize; nt];
        for k in 0..self.roots.len() {
            let leaf = self.leaf_of(k, x);
            let w = self.weights.as_ref().map_or(1.0, |w| w[k]);
            if self.leaf_dim == 1 {
                let t = self.targets.as_ref().map_or(0, |t| t[k] as usize);
                sum[t] += w * self.leaf_values[leaf];
                count[t] += 1;
            } else {
                for t in 0..nt {
                    sum[t] += w * self.leaf_values[leaf * self.leaf_dim + t];
                    count[t] += 1;
                }
            }
        }
        (0..nt)
            .map(|t| {
                // A target no tree adds to keeps its zero sum under `average`.
                let agg = if self.average && count[t] > 0 {
                    sum[t] / count[t] as f64
                } else {
                    sum[t]
                };
                agg + self.base_scores[t]
            })
            .collect()
    }

    /// Adds `weight` times the path-dependent expectation of tree node `i` for row `x` to
    /// `out` when only the features in `known` (a bit mask) are known: a known feature's split
    /// follows the row, an unknown one averages both children weighted by
    /// `cover(child) / cover(node)` (0 when the node's cover is 0).
    fn expect_known(
        &self,
        i: usize,
        x: &[f64],
        known: u64,
        cover: &[f64],
        weight: f64,
        out: &mut [f64],
    ) {
        let d = self.leaf_dim;
        if self.flags[i] & flags::LEAF != 0 {
            for (o, v) in out.iter_mut().zip(&self.leaf_values[i * d..(i + 1) * d]) {
                *o += weight * v;
            }
            return;
        }
        let (l, r) = (self.left[i] as usize, self.right[i] as usize);
        if known >> self.feature[i] & 1 == 1 {
            let c = if self.goes_left(i, x) { l } else { r };
            return self.expect_known(c, x, known, cover, weight, out);
        }
        if cover[i] > 0.0 {
            self.expect_known(l, x, known, cover, weight * cover[l] / cover[i], out);
            self.expect_known(r, x, known, cover, weight * cover[r] / cover[i], out);
        }
    }

    /// Path-dependent TreeSHAP contributions of row `x` by their definition (docs/OPS.md,
    /// "Explanations"): Shapley values over all `n_features` features (at most 20) of the
    /// game `v(S)` = the ensemble's output with the features of `S` known, trees weighted and
    /// aggregated as the prediction; `n_targets × (n_features + 1)` values, bias (`v(∅)` plus
    /// the base score) last. Exponential in `n_features`: for small tests only.
    ///
    /// # Panics
    /// Without `node_cover`, or with more than 20 features.
    pub fn shapley_row(&self, x: &[f64], n_features: usize) -> Vec<f64> {
        assert!(n_features <= 20, "too many features for the brute force");
        let cover = self.node_cover.as_ref().expect("the node has node_cover");
        let nt = self.n_targets;
        let d = self.leaf_dim;
        // v[S][t]
        let mut count = vec![0usize; nt];
        for k in 0..self.roots.len() {
            if d == 1 {
                count[self.targets.as_ref().map_or(0, |t| t[k] as usize)] += 1;
            } else {
                count.iter_mut().for_each(|c| *c += 1);
            }
        }
        let n_sets = 1usize << n_features;
        let mut v = vec![0.0f64; n_sets * nt];
        let mut leaf = vec![0.0; d];
        for s in 0..n_sets {
            for k in 0..self.roots.len() {
                let w = self.weights.as_ref().map_or(1.0, |w| w[k]);
                leaf.fill(0.0);
                self.expect_known(self.roots[k] as usize, x, s as u64, cover, 1.0, &mut leaf);
                if d == 1 {
                    let t = self.targets.as_ref().map_or(0, |t| t[k] as usize);
                    v[s * nt + t] += w * leaf[0];
                } else {
                    for t in 0..nt {
                        v[s * nt + t] += w * leaf[t];
                    }
                }
            }
            for t in 0..nt {
                if self.average && count[t] > 0 {
                    v[s * nt + t] /= count[t] as f64;
                }
            }
        }
        let f = n_features;
        let fact = |n: usize| (1..=n).map(|i| i as f64).product::<f64>();
        // weight[k] = k! (f - k - 1)! / f!
        let weight: Vec<f64> = (0..f)
            .map(|k| fact(k) * fact(f - k - 1) / fact(f))
            .collect();
        let mut out = vec![0.0; nt * (f + 1)];
        for t in 0..nt {
            for j in 0..f {
                let mut phi = 0.0;
                for s in 0..n_sets {
                    if s >> j & 1 == 1 {
                        continue;
                    }
                    let w = weight[(s as u64).count_ones() as usize];
                    phi += w * (v[(s | 1 << j) * nt + t] - v[s * nt + t]);
                }
                out[t * (f + 1) + j] = phi;
            }
            out[t * (f + 1) + f] = v[t] + self.base_scores[t];
        }
        out
    }

    /// [`row`](Self::row) over every row of `x`.
    pub fn rows(&self, x: &[Vec<f64>]) -> Vec<Vec<f64>> {
        x.iter().map(|r| self.row(r)).collect()
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// Width of a value of `shape` (`-1` batch first): the product of the other dimensions.
fn width_of(shape: &[i64]) -> usize {
    shape
        .iter()
        .skip(1)
        .map(|&d| d.unsigned_abs() as usize)
        .product()
}

/// Runs one node on its input values.
pub fn run_node(file: &MleFile, node: &Node, inputs: &[&Value]) -> Value {
    let x = || {
        *inputs
            .first()
            .unwrap_or_else(|| panic!("node {}: no input", node.name))
    };
    let per_feature = |k: &str, default: Option<f64>| -> Vec<f64> {
        tensor_f64(file, node, k).unwrap_or_else(|| {
            let d = default.unwrap_or_else(|| panic!("node {}: missing {k}", node.name));
            vec![d; x().width]
        })
    };
    match node.op.as_str() {
        "TreeEnsemble" => {
            let t = Trees::from_node(file, node);
            x().map_rows(t.n_targets(), |r| t.row(r))
        }
        "Identity" => x().clone(),
        "Reshape" => {
            let shape = match node.attr("shape") {
                Some(Attr::Ints(s)) => s.clone(),
                other => panic!("node {}: shape is {other:?}", node.name),
            };
            let w = width_of(&shape);
            assert_eq!(w, x().width, "node {}: reshape to {shape:?}", node.name);
            x().clone()
        }
        "Cast" => match string(node, "to") {
            Some("f32") => x().map(|v| v as f32 as f64),
            Some("f64") => x().clone(),
            other => panic!("node {}: to = {other:?}", node.name),
        },
        "Sigmoid" => x().map(sigmoid),
        "Exp" => x().map(f64::exp),
        "Softmax" => {
            assert!(
                matches!(int(node, "axis"), None | Some(-1) | Some(1)),
                "node {}: softmax over the last axis only",
                node.name
            );
            x().map_rows(x().width, |r| {
                // The maximum subtracted first.
                let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let s: f64 = r.iter().map(|v| (v - m).exp()).sum();
                r.iter().map(|v| (v - m).exp() / s).collect()
            })
        }
        "BinaryToProba" => x().map_rows(2, |r| vec![1.0 - r[0], r[0]]),
        "ArgMax" => x().map_rows(1, |r| {
            // The first maximum; NaN never wins.
            let mut best = 0;
            for (j, &v) in r.iter().enumerate() {
                if v > r[best] || (r[best].is_nan() && !v.is_nan()) {
                    best = j;
                }
            }
            vec![best as f64]
        }),
        "Threshold" => {
            let t = float(node, "threshold")
                .unwrap_or_else(|| panic!("node {}: missing threshold", node.name));
            x().map_rows(1, |r| vec![if r[0] > t { 1.0 } else { 0.0 }])
        }
        "Scaler" | "Affine" => {
            let offset = per_feature("offset", Some(0.0));
            let divisor = tensor_f64(file, node, "divisor");
            let scale = per_feature("scale", Some(1.0));
            let bias = tensor_f64(file, node, "bias");
            x().map_rows(x().width, |r| {
                r.iter()
                    .enumerate()
                    .map(|(f, &v)| {
                        let y = match &divisor {
                            Some(d) => (v - offset[f]) / d[f],
                            None => (v - offset[f]) * scale[f],
                        };
                        bias.as_ref().map_or(y, |b| y + b[f])
                    })
                    .collect()
            })
        }
        "Imputer" => {
            let values = per_feature("values", None);
            let missing = float(node, "missing").unwrap_or(f64::NAN);
            x().map_rows(x().width, |r| {
                r.iter()
                    .enumerate()
                    .map(|(f, &v)| {
                        if v.is_nan() || v == missing {
                            values[f]
                        } else {
                            v
                        }
                    })
                    .collect()
            })
        }
        "Normalizer" => {
            let norm = string(node, "norm").unwrap_or("l2").to_string();
            x().map_rows(x().width, |r| {
                let n =
                    match norm.as_str() {
                        "l1" => r.iter().map(|v| v.abs()).sum::<f64>(),
                        "l2" => r.iter().map(|v| v * v).sum::<f64>().sqrt(),
                        "max" => r.iter().map(|v| v.abs()).fold(0.0, |m: f64, a| {
                            if a > m || a.is_nan() {
                                a
                            } else {
                                m
                            }
                        }),
                        other => panic!("node {}: norm = {other:?}", node.name),
                    };
                // A zero row stays zero.
                let n = if n == 0.0 { 1.0 } else { n };
                r.iter().map(|v| v / n).collect()
            })
        }
        "LinearModel" => {
            let coef = tensor_f64(file, node, "coef")
                .unwrap_or_else(|| panic!("node {}: missing coef", node.name));
            let f = x().width;
            let t = coef.len() / f;
            let intercept = tensor_f64(file, node, "intercept").unwrap_or(vec![0.0; t]);
            x().map_rows(t, |r| {
                (0..t)
                    .map(|k| {
                        let dot: f64 = (0..f).map(|j| r[j] * coef[k * f + j]).sum();
                        dot + intercept[k]
                    })
                    .collect()
            })
        }
        op => panic!(
            "reference interpreter: op {op} (node {}) is not covered",
            node.name
        ),
    }
}

/// Runs the whole graph of `file` on `rows` (the first graph input; pass f32 inputs
/// widened) and returns every value by name, the graph input included.
pub fn run(file: &MleFile, rows: &[Vec<f64>]) -> BTreeMap<String, Value> {
    let g = file.graph();
    let input = g.inputs.first().expect("the graph has an input");
    let width = width_of(&input.shape);
    let mut values = BTreeMap::new();
    values.insert(
        input.name.clone(),
        Value {
            data: rows
                .iter()
                .inspect(|r| assert_eq!(r.len(), width, "reference: a row's width"))
                .flatten()
                .copied()
                .collect(),
            width,
        },
    );
    for node in &g.nodes {
        let ins: Vec<&Value> = node
            .inputs
            .iter()
            .map(|i| {
                values
                    .get(i)
                    .unwrap_or_else(|| panic!("node {}: no value {i}", node.name))
            })
            .collect();
        let out = run_node(file, node, &ins);
        assert_eq!(node.outputs.len(), 1, "node {}: one output", node.name);
        values.insert(node.outputs[0].clone(), out);
    }
    values
}

#[cfg(test)]
mod tests {
    use mle_format::tree::{flags, Aggregate, CategorySets, Comparison, Members, Precision};
    use mle_format::{DType, Metadata, ModelBuilder, Node, Task, ValueInfo, WriteOptions};

    use super::*;
    use crate::tree::{ensemble, file, push_tree, read, TreeNode};

    fn stump(t: f64, fl: u8) -> Vec<TreeNode> {
        vec![
            TreeNode::Split(0, t, 1, 2, fl),
            TreeNode::Leaf(vec![-1.0]),
            TreeNode::Leaf(vec![1.0]),
        ]
    }

    fn one(cmp: Comparison, prec: Precision, t: f64, fl: u8, x: f64) -> f64 {
        Trees::from_file(&file(&ensemble(cmp, prec, &[stump(t, fl)]), 1)).row(&[x])[0]
    }

    #[test]
    fn numeric_splits_follow_ops_md() {
        use Comparison::{Le, Lt};
        use Precision::{F32, F64};
        // lt / le exactly at the threshold.
        assert_eq!(one(Lt, F64, 0.5, 0, 0.5), 1.0);
        assert_eq!(one(Le, F64, 0.5, 0, 0.5), -1.0);
        // f32 precision rounds the input first: 1 - 2^-30 becomes 1.0.
        let x = 1.0 - 2f64.powi(-30);
        assert_eq!(one(Lt, F32, 1.0, 0, x), 1.0);
        assert_eq!(one(Lt, F64, 1.0, 0, x), -1.0);
        // NaN follows bit 1.
        assert_eq!(one(Le, F64, 0.5, flags::MISSING_LEFT, f64::NAN), -1.0);
        assert_eq!(one(Le, F64, 0.5, 0, f64::NAN), 1.0);
        // Zero is missing within the band |x| <= 1e-35f32, on the unrounded input.
        let zm = flags::ZERO_IS_MISSING;
        assert_eq!(one(Le, F64, -1.0, zm | flags::MISSING_LEFT, 0.0), -1.0);
        assert_eq!(
            one(Le, F64, -1.0, zm | flags::MISSING_LEFT, ZERO_BAND),
            -1.0
        );
        assert_eq!(one(Le, F64, -1.0, zm | flags::MISSING_LEFT, 2e-35), 1.0);
        assert_eq!(one(Le, F64, 1.0, zm, -1e-36), 1.0);
        // NaN is zero: replaced, then compared.
        assert_eq!(one(Le, F64, 0.0, flags::NAN_IS_ZERO, f64::NAN), -1.0);
        assert_eq!(one(Lt, F64, 0.0, flags::NAN_IS_ZERO, f64::NAN), 1.0);
    }

    #[test]
    fn categorical_splits_round_then_truncate() {
        let big = (1u32 << 24) + 4;
        let words = (big / 32 + 1) as usize;
        let mut bits = vec![0u32; words];
        bits[(big / 32) as usize] |= 1 << (big % 32);
        bits[0] = 0b1001; // {0, 3}
        for (prec, members, x, want) in [
            (Precision::F32, Members::Left, big as f64 - 1.0, -1.0), // rounds to 2^24 + 4
            (Precision::F64, Members::Left, big as f64 - 1.0, 1.0),
            (Precision::F64, Members::Left, 3.9, -1.0), // truncates to 3
            (Precision::F64, Members::Left, -0.5, -1.0), // truncates to 0
            (Precision::F64, Members::Left, -1.0, 1.0), // negative: not a member
            (Precision::F64, Members::Left, 1e10, 1.0), // beyond the bitset
            (Precision::F64, Members::Right, 3.0, 1.0), // members go right
            (Precision::F64, Members::Right, 1.0, -1.0),
            (Precision::F64, Members::Right, f64::NAN, 1.0), // NaN follows bit 1 (unset)
        ] {
            let mut s = ensemble(Comparison::Le, prec, &[]);
            let root = s.categorical_split(0, &bits, 1, 2, 0);
            s.leaf(&[-1.0]);
            s.leaf(&[1.0]);
            s.push_tree(root, 0, 1.0);
            s.categorical_members = members;
            assert!(s
                .categories
                .as_ref()
                .is_some_and(|c: &CategorySets| c.bits.len() == words));
            let got = Trees::from_file(&file(&s, 1)).row(&[x])[0];
            assert_eq!(got, want, "{prec:?} {members:?} x = {x}");
        }
    }

    #[test]
    fn aggregation_weights_targets_and_base_scores() {
        let leaf = |v: f64| vec![TreeNode::Leaf(vec![v])];
        let mut s = ensemble(Comparison::Lt, Precision::F64, &[]);
        s.n_targets = 3;
        s.base_scores = vec![0.5, -0.5, 1.0];
        push_tree(&mut s, &leaf(2.0), 0, 1.0);
        push_tree(&mut s, &leaf(10.0), 2, 0.5);
        push_tree(&mut s, &leaf(100.0), 2, 1.0);
        let t = Trees::from_file(&file(&s, 1));
        assert_eq!(t.row(&[0.0]), [2.5, -0.5, 106.0]);
        s.aggregate = Aggregate::Average;
        // Target 1 has no tree: its zero sum stays, plus the base score.
        let t = Trees::from_file(&file(&s, 1));
        assert_eq!(t.row(&[0.0]), [2.5, -0.5, 105.0 / 2.0 + 1.0]);
        // Vector leaves add to every target; average divides by the number of trees.
        let mut v = ensemble(Comparison::Lt, Precision::F64, &[]);
        v.n_targets = 2;
        v.leaf_dim = 2;
        v.base_scores = vec![0.0, 100.0];
        push_tree(&mut v, &[TreeNode::Leaf(vec![1.0, 2.0])], 0, 1.0);
        push_tree(&mut v, &[TreeNode::Leaf(vec![3.0, 4.0])], 0, 3.0);
        v.aggregate = Aggregate::Average;
        let t = Trees::from_file(&file(&v, 1));
        assert_eq!(t.row(&[0.0]), [5.0, 107.0]);
    }

    #[test]
    fn a_classifier_graph_runs_node_by_node() {
        // Scaler → TreeEnsemble (margin) → Sigmoid → BinaryToProba, and Threshold, ArgMax.
        let s = ensemble(
            Comparison::Lt,
            Precision::F64,
            &[stump(0.0, flags::MISSING_LEFT)],
        );
        let meta = Metadata::new(
            "test",
            "t",
            Task::Binary,
            vec!["a".into()],
            DType::F64,
            &[("probabilities", DType::F64), ("label", DType::I64)],
        );
        let mut b = ModelBuilder::new(meta);
        b.add_tensor("offset", &[1], &[1.0f64]).unwrap();
        b.add_tensor("scale", &[1], &[2.0f64]).unwrap();
        b.push_node(
            Node::new("sc", "Scaler", &["X"], &["xs"])
                .with("offset", Attr::Tensor("offset".into()))
                .with("scale", Attr::Tensor("scale".into())),
        );
        s.write(&mut b, "trees", "xs", "margin").unwrap();
        b.push_node(Node::new("sig", "Sigmoid", &["margin"], &["p"]));
        b.push_node(Node::new(
            "b2p",
            "BinaryToProba",
            &["p"],
            &["probabilities"],
        ));
        b.push_node(
            Node::new("th", "Threshold", &["p"], &["label"]).with("threshold", Attr::Float(0.5)),
        );
        b.push_node(Node::new("am", "ArgMax", &["probabilities"], &["label2"]));
        b.set_inputs(vec![ValueInfo {
            name: "X".into(),
            dtype: DType::F64,
            shape: vec![-1, 1],
        }]);
        let f = read(&b.to_bytes(&WriteOptions::default()).unwrap());
        let v = run(&f, &[vec![0.0], vec![2.0], vec![f64::NAN]]);
        // (x - 1) * 2 = -2, 2, NaN → margins -1, 1, -1 (NaN goes left).
        assert_eq!(v["xs"].data[..2], [-2.0, 2.0]);
        assert_eq!(v["margin"].data, [-1.0, 1.0, -1.0]);
        let lo = 1.0 / (1.0 + 1f64.exp());
        let hi = 1.0 / (1.0 + (-1f64).exp());
        assert_eq!(v["p"].data, [lo, hi, lo]);
        assert_eq!(v["probabilities"].width, 2);
        assert_eq!(v["probabilities"].row(1), [1.0 - hi, hi]);
        assert_eq!(v["label"].data, [0.0, 1.0, 0.0]);
        assert_eq!(v["label2"].data, [0.0, 1.0, 0.0]);
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_nan_never_wins() {
        let x = Value {
            data: vec![1.0, 3.0, 3.0, f64::NAN, 2.0, f64::NAN, f64::NAN, f64::NAN],
            width: 4,
        };
        let node = Node::new("am", "ArgMax", &["x"], &["i"]);
        let f = file(&ensemble(Comparison::Lt, Precision::F64, &[]), 1);
        assert_eq!(run_node(&f, &node, &[&x]).data, [1.0, 0.0]);
    }
}
