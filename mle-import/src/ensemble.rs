//! The framework-neutral part of an import: trees in a per-tree form ([`LocalNode`] lists),
//! flattened into the `TreeEnsemble` struct-of-arrays of `docs/OPS.md`, and the graph around
//! it (post-transform, outputs, metadata).

use mle_format::{
    Attr, ClassLabels, DType, InputSchema, Metadata, ModelBuilder, Node, OutputSchema, Task,
    ValueInfo,
};

use crate::error::ImportError;

/// Bit 0 of `flags`: the node is a leaf.
pub const FLAG_LEAF: u8 = 1;
/// Bit 1: a missing value goes left.
pub const FLAG_DEFAULT_LEFT: u8 = 1 << 1;
/// Bit 2: categorical split.
pub const FLAG_CATEGORICAL: u8 = 1 << 2;
/// Bit 3: zero is missing (LightGBM `MissingType::Zero`).
pub const FLAG_ZERO_MISSING: u8 = 1 << 3;
/// Bit 4: NaN is replaced by zero (LightGBM `MissingType::None`).
pub const FLAG_NAN_IS_ZERO: u8 = 1 << 4;

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
        /// `FLAG_*` bits (never `FLAG_LEAF`).
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
                    self.flags.push(FLAG_LEAF);
                    self.leaf_values.push(*v);
                    self.cat_offsets.push(self.cat_bits.len() as u32);
                }
                LocalNode::Split {
                    feature,
                    threshold,
                    left,
                    right,
                    flags,
                    cats,
                } => {
                    self.feature.push(*feature);
                    self.threshold.push(*threshold);
                    self.left.push(0);
                    self.right.push(0);
                    self.flags.push(*flags & !FLAG_LEAF);
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
    pub comparison: &'static str,
    /// `f32` or `f64`.
    pub input_precision: &'static str,
    /// `sum` or `average`.
    pub aggregate: &'static str,
    /// `left` or `right`.
    pub categorical_members: &'static str,
    /// Margin-space base score per target.
    pub base_scores: Vec<f64>,
    /// The transform after the ensemble.
    pub post: Post,
}

fn t(name: &str) -> Attr {
    Attr::Tensor(name.to_string())
}

/// Builds the model: input `X`, a `TreeEnsemble` node, the post-transform and the outputs
/// of `docs/OPS.md` (`prediction`, or `label` + `probabilities`).
pub fn build(ens: Ensemble, spec: GraphSpec) -> Result<ModelBuilder, ImportError> {
    let n_features = spec.feature_names.len();
    let n_targets = spec.n_targets;
    let classifier = spec.task.is_classifier();
    let n_classes = match spec.post {
        Post::BinarySigmoid => 2,
        _ => n_targets,
    };
    let (names, dtypes) = if classifier {
        (
            vec!["label".to_string(), "probabilities".to_string()],
            vec![DType::I64, DType::F64],
        )
    } else {
        (vec!["prediction".to_string()], vec![DType::F64])
    };
    let meta = Metadata {
        framework: spec.framework.to_string(),
        framework_version: spec.framework_version.clone(),
        model_type: spec.model_type.clone(),
        task: spec.task,
        input: InputSchema {
            feature_names: spec.feature_names.clone(),
            dtype: spec.input_dtype,
            shape: vec![-1, n_features as i64],
        },
        output: OutputSchema {
            names,
            dtypes,
            class_labels: classifier.then(|| ClassLabels::Int((0..n_classes as i64).collect())),
        },
        export_time: String::new(),
        exporter_version: concat!("mle-import ", env!("CARGO_PKG_VERSION")).to_string(),
        user: Default::default(),
    };
    let mut b = ModelBuilder::new(meta);
    let n_nodes = ens.feature.len() as u64;
    let n_trees = ens.roots.len() as u64;
    b.add_tensor("trees.feature", &[n_nodes], &ens.feature)?;
    b.add_tensor("trees.threshold", &[n_nodes], &ens.threshold)?;
    b.add_tensor("trees.left", &[n_nodes], &ens.left)?;
    b.add_tensor("trees.right", &[n_nodes], &ens.right)?;
    b.add_tensor("trees.flags", &[n_nodes], &ens.flags)?;
    b.add_tensor("trees.leaf_values", &[n_nodes], &ens.leaf_values)?;
    b.add_tensor("trees.roots", &[n_trees], &ens.roots)?;
    let mut node = Node::new("trees", "TreeEnsemble", &["X"], &["margin"])
        .with("n_targets", Attr::Int(n_targets as i64))
        .with("tree_roots", t("trees.roots"))
        .with("feature", t("trees.feature"))
        .with("threshold", t("trees.threshold"))
        .with("left", t("trees.left"))
        .with("right", t("trees.right"))
        .with("flags", t("trees.flags"))
        .with("leaf_dim", Attr::Int(1))
        .with("leaf_values", t("trees.leaf_values"))
        .with("comparison", Attr::Str(spec.comparison.into()))
        .with("input_precision", Attr::Str(spec.input_precision.into()))
        .with("aggregate", Attr::Str(spec.aggregate.into()))
        .with("base_scores", Attr::Floats(spec.base_scores.clone()));
    if n_targets > 1 {
        b.add_tensor("trees.targets", &[n_trees], &ens.targets)?;
        node = node.with("tree_targets", t("trees.targets"));
    }
    if ens.weights.iter().any(|&w| w != 1.0) {
        b.add_tensor("trees.weights", &[n_trees], &ens.weights)?;
        node = node.with("tree_weights", t("trees.weights"));
    }
    if ens
        .flags
        .iter()
        .any(|&f| f & FLAG_CATEGORICAL != 0 && f & FLAG_LEAF == 0)
    {
        let mut offsets = ens.cat_offsets;
        offsets.push(ens.cat_bits.len() as u32);
        b.add_tensor("trees.cat_offsets", &[offsets.len() as u64], &offsets)?;
        b.add_tensor(
            "trees.cat_bits",
            &[ens.cat_bits.len() as u64],
            &ens.cat_bits,
        )?;
        node = node
            .with("cat_offsets", t("trees.cat_offsets"))
            .with("cat_bits", t("trees.cat_bits"))
            .with(
                "categorical_members",
                Attr::Str(spec.categorical_members.into()),
            );
    }
    b.push_node(node);

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
