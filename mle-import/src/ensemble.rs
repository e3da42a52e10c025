//! The framework-neutral part of an import: trees in a per-tree form ([`LocalNode`] lists),
//! flattened into the `TreeEnsemble` struct-of-arrays of `docs/OPS.md`, and the graph around
//! it (post-transform, outputs, metadata).

use mle_format::tree::{
    flags, Aggregate, CategoricalRule, CategorySets, Comparison, Members, Precision,
};
use mle_format::tree::{TreeAnnotations, TreeEnsembleSpec};
use mle_format::{Attr, ClassLabels, DType, Metadata, ModelBuilder, Node, Task, ValueInfo};

use crate::error::ImportError;

/// Most bitset words (over all categorical nodes) an import may build from category lists:
/// 16 MiB. Bitsets read as words from a LightGBM file are bounded by the file itself.
pub const MAX_CAT_WORDS: usize = 1 << 22;

/// Most input features a model may declare (its feature names are materialized).
pub const MAX_FEATURES: usize = 1 << 22;

/// One node of a tree before flattening; children are indices into the same tree.
#[derive(Debug, Clone)]
pub enum LocalNode {
    /// A leaf with its value (already scaled by the learning rate).
    Leaf(f64),
    /// A split.
    Split {
        /// Feature index (checked against the feature count by the parser).
        feature: i32,
        /// Threshold (numeric splits).
        threshold: f64,
        /// Left child index in the tree.
        left: usize,
        /// Right child index in the tree.
        right: usize,
        /// [`flags`] bits (never [`flags::LEAF`]).
        flags: u8,
        /// Category bitset words (categorical splits).
        cats: Vec<u32>,
    },
}

/// Where the trees' outputs go after the ensemble.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Post {
    /// Regression or ranking: the raw score.
    Identity,
    /// Regression through a logistic link (`reg:logistic`, LightGBM `cross_entropy`).
    Sigmoid,
    /// Regression through a log link (poisson, gamma, tweedie).
    Exp,
    /// Binary classifier: `p = sigmoid(margin)`, probabilities `[1 - p, p]`, label `p > 0.5`.
    BinarySigmoid,
    /// Multiclass: softmax over the class margins, label = argmax.
    Softmax,
    /// Multiclass one-vs-all: a sigmoid per class (not normalized), label = argmax.
    OvaSigmoid,
}

/// Accumulates trees into the flattened `TreeEnsemble` arrays.
#[derive(Debug, Default)]
pub struct Ensemble {
    feature: Vec<i32>,
    threshold: Vec<f64>,
    left: Vec<u32>,
    right: Vec<u32>,
    flags: Vec<u8>,
    leaf_values: Vec<f64>,
    cat_offsets: Vec<u32>,
    cat_bits: Vec<u32>,
    roots: Vec<u32>,
    targets: Vec<u32>,
    weights: Vec<f64>,
    /// Cover per node (`node_cover`), meaningful when `uncovered_trees == 0`.
    cover: Vec<f64>,
    /// The framework's number of each node (`leaf_ids`).
    ids: Vec<i32>,
    /// Trees pushed without covers: the model gets no `node_cover` (explanations refuse it).
    uncovered_trees: usize,
}

/// What the framework says about each node of a tree besides the split, by local index (the
/// index into the tree's [`LocalNode`] list).
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeInfo<'a> {
    /// Each node's cover (XGBoost `sum_hessian`, LightGBM `internal_count` / `leaf_count`),
    /// or `None` when the file has none (the model then has no `node_cover`).
    pub covers: Option<&'a [f64]>,
    /// Each node's number as the framework's leaf-index output reports it, or `None` for the
    /// local index itself.
    pub ids: Option<&'a [i32]>,
}

impl Ensemble {
    /// Appends a tree whose root is `nodes[root]`, adding to `target` with `weight`.
    ///
    /// Nodes are renumbered in depth-first pre-order from the root, so children always get
    /// higher global indices than their parent; unreachable nodes (XGBoost's deleted nodes)
    /// are dropped; a node reached twice (a cycle or a shared child) is an error naming
    /// `what` (the tree's field path).
    pub fn push_tree(
        &mut self,
        nodes: &[LocalNode],
        root: usize,
        target: u32,
        weight: f64,
        name: &str,
        what: &str,
    ) -> Result<(), ImportError> {
        self.push_tree_with(nodes, TreeInfo::default(), root, target, weight, name, what)
    }

    /// [`push_tree`](Self::push_tree) with each node's cover and framework number (`info`,
    /// by local index: each array as long as `nodes`, covers finite and non-negative, ids
    /// non-negative, or an error naming `what`).
    #[allow(clippy::too_many_arguments)]
    pub fn push_tree_with(
        &mut self,
        nodes: &[LocalNode],
        info: TreeInfo<'_>,
        root: usize,
        target: u32,
        weight: f64,
        name: &str,
        what: &str,
    ) -> Result<(), ImportError> {
        let invalid = |detail: String| ImportError::InvalidField {
            name: name.to_string(),
            field: what.to_string(),
            detail,
        };
        if root >= nodes.len() {
            return Err(invalid(format!(
                "root {root} out of range (the tree has {} nodes)",
                nodes.len()
            )));
        }
        if let Some(c) = info.covers {
            if c.len() != nodes.len() {
                return Err(invalid(format!(
                    "{} covers for {} nodes",
                    c.len(),
                    nodes.len()
                )));
            }
            if let Some((i, v)) = c
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(invalid(format!(
                    "cover of node {i} is {v}, expected finite and >= 0"
                )));
            }
        } else {
            self.uncovered_trees += 1;
        }
        if let Some(ids) = info.ids {
            if ids.len() != nodes.len() {
                return Err(invalid(format!(
                    "{} node ids for {} nodes",
                    ids.len(),
                    nodes.len()
                )));
            }
        }
        let base = self.feature.len();
        if base.saturating_add(nodes.len()) > u32::MAX as usize {
            return Err(invalid("more than 2^32 nodes in the ensemble".into()));
        }
        let mut visited = vec![false; nodes.len()];
        // (local node, global slot of the parent's child pointer to patch, is left)
        let mut stack: Vec<(usize, Option<(usize, bool)>)> = vec![(root, None)];
        while let Some((local, patch)) = stack.pop() {
            let node = nodes.get(local).ok_or_else(|| {
                invalid(format!(
                    "child index {local} out of range (the tree has {} nodes)",
                    nodes.len()
                ))
            })?;
            match visited.get_mut(local) {
                Some(v) if !*v => *v = true,
                _ => {
                    return Err(invalid(format!(
                        "node {local} is reached twice (a cycle or a shared child)"
                    )))
                }
            }
            let g = self.feature.len();
            self.cover.push(
                info.covers
                    .and_then(|c| c.get(local))
                    .copied()
                    .unwrap_or(0.0),
            );
            let id = match info.ids {
                Some(ids) => ids.get(local).copied().unwrap_or(0),
                None => i32::try_from(local).unwrap_or(i32::MAX),
            };
            if id < 0 {
                return Err(invalid(format!("node {local} has the negative id {id}")));
            }
            self.ids.push(id);
            if let Some((parent, is_left)) = patch {
                let slot = if is_left {
                    self.left.get_mut(parent)
                } else {
                    self.right.get_mut(parent)
                };
                if let Some(s) = slot {
                    *s = g as u32;
                }
            }
            match node {
                LocalNode::Leaf(v) => {
                    self.feature.push(0);
                    self.threshold.push(0.0);
                    self.left.push(0);
                    self.right.push(0);
                    self.flags.push(flags::LEAF);
                    self.leaf_values.push(*v);
                    self.cat_offsets.push(self.cat_bits.len() as u32);
                }
                LocalNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    flags: fl,
                    cats,
                } => {
                    self.feature.push(*feature);
                    self.threshold.push(*threshold);
                    self.left.push(0);
                    self.right.push(0);
                    self.flags.push(*fl & !flags::LEAF);
                    self.leaf_values.push(0.0);
                    self.cat_offsets.push(self.cat_bits.len() as u32);
                    if self.cat_bits.len().saturating_add(cats.len()) > u32::MAX as usize {
                        return Err(invalid("category bitsets exceed 2^32 words".into()));
                    }
                    self.cat_bits.extend_from_slice(cats);
                    // Right first so the left subtree is numbered first (pre-order).
                    stack.push((*right, Some((g, false))));
                    stack.push((*left, Some((g, true))));
                }
            }
        }
        self.roots.push(base as u32);
        self.targets.push(target);
        self.weights.push(weight);
        Ok(())
    }

    /// Number of trees so far.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    /// Number of bitset words so far.
    pub fn cat_words(&self) -> usize {
        self.cat_bits.len()
    }
}

/// Everything the graph needs besides the trees.
#[derive(Debug, Clone)]
pub struct GraphSpec {
    /// `xgboost` or `lightgbm`.
    pub framework: &'static str,
    /// Framework version, when the file says.
    pub framework_version: String,
    /// Booster kind (`gbtree`, `dart`, `gbdt`, `rf`).
    pub model_type: String,
    /// Regression, binary, multiclass or ranking.
    pub task: Task,
    /// One name per feature.
    pub feature_names: Vec<String>,
    /// Input dtype: f32 for XGBoost, f64 for LightGBM.
    pub input_dtype: DType,
    /// Columns of the ensemble output.
    pub n_targets: usize,
    /// `lt` or `le`.
    pub comparison: Comparison,
    /// `f32` or `f64`.
    pub input_precision: Precision,
    /// `sum` or `average`.
    pub aggregate: Aggregate,
    /// `left` or `right`.
    pub categorical_members: Members,
    /// `lightgbm` or `xgboost`: how a categorical split reads `-1 < x < 0`.
    pub categorical_rule: CategoricalRule,
    /// Margin-space base score per target.
    pub base_scores: Vec<f64>,
    /// The transform after the ensemble.
    pub post: Post,
}

/// Builds the model: input `X`, a `TreeEnsemble` node, the post-transform and the outputs
/// of `docs/OPS.md` (`prediction`, or `label` + `probabilities`).
pub fn build(ens: Ensemble, spec: GraphSpec) -> Result<ModelBuilder, ImportError> {
    build_with(ens, spec, |_| Ok(None))
}

/// [`build`] with an input stage: `prefix` adds what the trees read instead of `X` (typed
/// input features, their vocabularies and a `Lookup` chain) to the builder, after the
/// metadata and before the trees, and returns the name of the value the trees read (`None`:
/// `X`).
pub fn build_with(
    ens: Ensemble,
    spec: GraphSpec,
    prefix: impl FnOnce(&mut ModelBuilder) -> Result<Option<String>, ImportError>,
) -> Result<ModelBuilder, ImportError> {
    let n_features = spec.feature_names.len();
    let n_targets = spec.n_targets;
    let classifier = spec.task.is_classifier();
    let n_classes = match spec.post {
        Post::BinarySigmoid => 2,
        _ => n_targets,
    };
    let outputs: &[(&str, DType)] = if classifier {
        &[("label", DType::I64), ("probabilities", DType::F64)]
    } else {
        &[("prediction", DType::F64)]
    };
    let mut meta = Metadata::new(
        spec.framework,
        spec.model_type.clone(),
        spec.task,
        spec.feature_names.clone(),
        spec.input_dtype,
        outputs,
    );
    meta.framework_version = spec.framework_version.clone();
    meta.exporter_version = concat!("mle-import ", env!("CARGO_PKG_VERSION")).to_string();
    if classifier {
        meta = meta.with_class_labels(ClassLabels::Int((0..n_classes as i64).collect()));
    }
    let mut b = ModelBuilder::new(meta);
    let tree_input = prefix(&mut b)?.unwrap_or_else(|| "X".to_string());

    let any_categorical = ens
        .flags
        .iter()
        .any(|&f| f & flags::CATEGORICAL != 0 && f & flags::LEAF == 0);
    let categories = any_categorical.then(|| {
        let mut offsets = ens.cat_offsets;
        offsets.push(ens.cat_bits.len() as u32);
        CategorySets {
            offsets,
            bits: ens.cat_bits,
        }
    });
    let trees = TreeEnsembleSpec {
        n_targets,
        leaf_dim: 1,
        targets: (n_targets > 1).then_some(ens.targets),
        weights: ens.weights.iter().any(|&w| w != 1.0).then_some(ens.weights),
        roots: ens.roots,
        feature: ens.feature,
        threshold: ens.threshold,
        left: ens.left,
        right: ens.right,
        flags: ens.flags,
        leaf_values: ens.leaf_values,
        comparison: spec.comparison,
        input_precision: spec.input_precision,
        aggregate: spec.aggregate,
        base_scores: spec.base_scores.clone(),
        categories,
        categorical_members: spec.categorical_members,
        categorical_rule: spec.categorical_rule,
    };
    let annotations = TreeAnnotations {
        node_cover: (ens.uncovered_trees == 0).then_some(ens.cover),
        leaf_ids: Some(ens.ids),
    };
    trees
        .write_annotated(&annotations, &mut b, "trees", &tree_input, "margin")
        .map_err(mle_format::FormatError::from)?;

    let f64v = |name: &str, shape: Vec<i64>| ValueInfo {
        name: name.to_string(),
        dtype: DType::F64,
        shape,
    };
    let label = ValueInfo {
        name: "label".into(),
        dtype: DType::I64,
        shape: vec![-1],
    };
    let flatten = |b: &mut ModelBuilder, from: &str| {
        b.push_node(
            Node::new("to_vector", "Reshape", &[from], &["prediction"])
                .with("shape", Attr::Ints(vec![-1])),
        );
    };
    let prediction_shape = if n_targets == 1 {
        vec![-1]
    } else {
        vec![-1, n_targets as i64]
    };
    match spec.post {
        Post::Identity | Post::Sigmoid | Post::Exp => {
            let from = match spec.post {
                Post::Sigmoid => {
                    b.push_node(Node::new("link", "Sigmoid", &["margin"], &["transformed"]));
                    "transformed"
                }
                Post::Exp => {
                    b.push_node(Node::new("link", "Exp", &["margin"], &["transformed"]));
                    "transformed"
                }
                _ => "margin",
            };
            if n_targets == 1 {
                flatten(&mut b, from);
            } else {
                b.push_node(Node::new("output", "Identity", &[from], &["prediction"]));
            }
            b.set_outputs(vec![f64v("prediction", prediction_shape)]);
        }
        Post::BinarySigmoid => {
            b.push_node(Node::new("sigmoid", "Sigmoid", &["margin"], &["p"]));
            b.push_node(Node::new(
                "proba",
                "BinaryToProba",
                &["p"],
                &["probabilities"],
            ));
            b.push_node(
                Node::new("decide", "Threshold", &["p"], &["label"])
                    .with("threshold", Attr::Float(0.5)),
            );
            b.set_outputs(vec![label, f64v("probabilities", vec![-1, 2])]);
        }
        Post::Softmax | Post::OvaSigmoid => {
            let (op, attr) = if spec.post == Post::Softmax {
                ("Softmax", Some(("axis", Attr::Int(-1))))
            } else {
                ("Sigmoid", None)
            };
            let mut n = Node::new("proba", op, &["margin"], &["probabilities"]);
            if let Some((k, v)) = attr {
                n = n.with(k, v);
            }
            b.push_node(n);
            b.push_node(Node::new(
                "decide",
                "ArgMax",
                &["probabilities"],
                &["label"],
            ));
            b.set_outputs(vec![
                label,
                f64v("probabilities", vec![-1, n_targets as i64]),
            ]);
        }
    }
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: spec.input_dtype,
        shape: vec![-1, n_features as i64],
    }]);
    Ok(b)
}

/// `f0`, `f1`, ... for models that do not name their features.
pub fn default_feature_names(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("f{i}")).collect()
}
