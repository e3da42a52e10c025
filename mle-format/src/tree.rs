//! The `TreeEnsemble` operator's contract (semantics in `docs/OPS.md`): node flag bits
//! ([`flags`]), attribute names ([`attr`]) and [`TreeEnsembleSpec`], the typed builder that
//! writes the node. Importers, the Python exporters (through `mle_runtime._native`), tests and
//! the executor all read them from here; nothing else defines them.

/// Node flag bits of the `flags` tensor (`u8` per node).
pub mod flags {
    /// Bit 0: the node is a leaf.
    pub const LEAF: u8 = 1;
    /// Bit 1: a missing value goes left.
    pub const MISSING_LEFT: u8 = 1 << 1;
    /// Bit 2: categorical (set-membership) split.
    pub const CATEGORICAL: u8 = 1 << 2;
    /// Bit 3: `0.0` is a missing value (LightGBM `MissingType::Zero`; `|x| <= 1e-35`).
    pub const ZERO_IS_MISSING: u8 = 1 << 3;
    /// Bit 4: NaN is replaced by `0.0` and compared (LightGBM `MissingType::None`).
    pub const NAN_IS_ZERO: u8 = 1 << 4;
    /// Every defined bit; a reader refuses any other.
    pub const ALL: u8 = LEAF | MISSING_LEFT | CATEGORICAL | ZERO_IS_MISSING | NAN_IS_ZERO;
    /// Every bit with its constant's name, in bit order (for front ends that export them).
    pub const NAMED: [(&str, u8); 5] = [
        ("LEAF", LEAF),
        ("MISSING_LEFT", MISSING_LEFT),
        ("CATEGORICAL", CATEGORICAL),
        ("ZERO_IS_MISSING", ZERO_IS_MISSING),
        ("NAN_IS_ZERO", NAN_IS_ZERO),
    ];
}

/// Attribute names of the `TreeEnsemble` node.
pub mod attr {
    /// `i`: columns of the output.
    pub const N_TARGETS: &str = "n_targets";
    /// `T: u32[n_trees]`: root node of each tree.
    pub const TREE_ROOTS: &str = "tree_roots";
    /// `T: u32[n_trees]` (optional): target each tree adds to.
    pub const TREE_TARGETS: &str = "tree_targets";
    /// `T: f64[n_trees]` (optional): weight of each tree.
    pub const TREE_WEIGHTS: &str = "tree_weights";
    /// `T: i32[n_nodes]`: split feature.
    pub const FEATURE: &str = "feature";
    /// `T: f64[n_nodes]`: split threshold.
    pub const THRESHOLD: &str = "threshold";
    /// `T: u32[n_nodes]`: left child.
    pub const LEFT: &str = "left";
    /// `T: u32[n_nodes]`: right child.
    pub const RIGHT: &str = "right";
    /// `T: u8[n_nodes]`: node flags ([`super::flags`]).
    pub const FLAGS: &str = "flags";
    /// `i`: values per leaf.
    pub const LEAF_DIM: &str = "leaf_dim";
    /// `T: f64[n_nodes * leaf_dim]`: leaf outputs.
    pub const LEAF_VALUES: &str = "leaf_values";
    /// `s`: `lt` or `le`.
    pub const COMPARISON: &str = "comparison";
    /// `s`: `f32` or `f64`.
    pub const INPUT_PRECISION: &str = "input_precision";
    /// `s`: `sum` or `average`.
    pub const AGGREGATE: &str = "aggregate";
    /// `fs[n_targets]`: added after aggregation.
    pub const BASE_SCORES: &str = "base_scores";
    /// `T: u32[n_nodes + 1]`: bitset offsets of categorical nodes.
    pub const CAT_OFFSETS: &str = "cat_offsets";
    /// `T: u32[..]`: bitset words.
    pub const CAT_BITS: &str = "cat_bits";
    /// `s`: `left` or `right`, where members of a category set go.
    pub const CATEGORICAL_MEMBERS: &str = "categorical_members";
    /// `s`: `lightgbm` (default) or `xgboost`, how a categorical split reads a negative value.
    pub const CATEGORICAL_RULE: &str = "categorical_rule";
    /// `T: f64[n_nodes]` (optional): each node's cover (the training weight reaching it:
    /// XGBoost `sum_hessian`, LightGBM `internal_count` / `leaf_count`, scikit-learn
    /// `weighted_n_node_samples`), internal nodes and leaves; needed by explanations only.
    pub const NODE_COVER: &str = "node_cover";
    /// `T: i32[n_nodes]` (optional): the framework's number of each leaf, as its leaf-index
    /// output reports it (XGBoost `pred_leaf` and scikit-learn `apply`: the node id in the
    /// tree; LightGBM `pred_leaf`: the leaf index in the tree); ignored on internal nodes.
    pub const LEAF_IDS: &str = "leaf_ids";
    /// Every attribute with its constant's name, in the order of `docs/OPS.md`, except the
    /// explanation annotations ([`ANNOTATIONS_NAMED`]), kept apart so that front ends which
    /// export this list keep their contract until they write annotations.
    pub const NAMED: [(&str, &str); 19] = [
        ("N_TARGETS", N_TARGETS),
        ("TREE_ROOTS", TREE_ROOTS),
        ("TREE_TARGETS", TREE_TARGETS),
        ("TREE_WEIGHTS", TREE_WEIGHTS),
        ("FEATURE", FEATURE),
        ("THRESHOLD", THRESHOLD),
        ("LEFT", LEFT),
        ("RIGHT", RIGHT),
        ("FLAGS", FLAGS),
        ("LEAF_DIM", LEAF_DIM),
        ("LEAF_VALUES", LEAF_VALUES),
        ("COMPARISON", COMPARISON),
        ("INPUT_PRECISION", INPUT_PRECISION),
        ("AGGREGATE", AGGREGATE),
        ("BASE_SCORES", BASE_SCORES),
        ("CAT_OFFSETS", CAT_OFFSETS),
        ("CAT_BITS", CAT_BITS),
        ("CATEGORICAL_MEMBERS", CATEGORICAL_MEMBERS),
        ("CATEGORICAL_RULE", CATEGORICAL_RULE),
    ];
    /// The optional explanation annotations ([`super::TreeAnnotations`]), in the order of
    /// `docs/OPS.md`.
    pub const ANNOTATIONS_NAMED: [(&str, &str); 2] =
        [("NODE_COVER", NODE_COVER), ("LEAF_IDS", LEAF_IDS)];
}

use thiserror::Error;

use crate::error::FormatError;
use crate::ir::{Attr, Node};
use crate::writer::ModelBuilder;

/// An invariant of a [`TreeEnsembleSpec`] that does not hold; each variant names the field
/// and the bound that failed.
#[derive(Debug, Error)]
pub enum TreeSpecError {
    /// `n_targets` is zero.
    #[error("TreeEnsemble {name:?}: n_targets is 0, expected at least 1")]
    NoTargets {
        /// Node name.
        name: String,
    },
    /// `leaf_dim` is neither 1 nor `n_targets`.
    #[error(
        "TreeEnsemble {name:?}: leaf_dim is {leaf_dim}, expected 1 or n_targets ({n_targets})"
    )]
    LeafDim {
        /// Node name.
        name: String,
        /// The leaf dimension given.
        leaf_dim: usize,
        /// The number of targets.
        n_targets: usize,
    },
    /// An array's length disagrees with the node count, the tree count or `n_targets`.
    #[error("TreeEnsemble {name:?}: {field} has {len} elements, expected {expected} ({bound})")]
    Length {
        /// Node name.
        name: String,
        /// The attribute (one of [`attr`]).
        field: &'static str,
        /// Its length.
        len: usize,
        /// The length it must have.
        expected: usize,
        /// What the expected length is (`n_nodes`, `n_trees`, ...).
        bound: &'static str,
    },
    /// More nodes (or bitset words) than a `u32` index can address.
    #[error("TreeEnsemble {name:?}: {field} has {len} elements, more than 2^32 - 1")]
    TooLarge {
        /// Node name.
        name: String,
        /// The attribute.
        field: &'static str,
        /// Its length.
        len: usize,
    },
    /// A node's flags carry bits outside [`flags::ALL`].
    #[error("TreeEnsemble {name:?}: flags[{node}] = {value:#04x} has bits outside {all:#04x}", all = flags::ALL)]
    UndefinedFlags {
        /// Node name.
        name: String,
        /// Node index.
        node: usize,
        /// The flags byte.
        value: u8,
    },
    /// An internal node's child does not point forward inside the node arrays.
    #[error("TreeEnsemble {name:?}: {field}[{node}] = {child}, expected within {node}+1..{n_nodes} (children point forward)")]
    Child {
        /// Node name.
        name: String,
        /// `left` or `right`.
        field: &'static str,
        /// Node index.
        node: usize,
        /// The child index given.
        child: u32,
        /// Number of nodes.
        n_nodes: usize,
    },
    /// An internal node's split feature is negative.
    #[error("TreeEnsemble {name:?}: feature[{node}] = {feature}, expected >= 0")]
    Feature {
        /// Node name.
        name: String,
        /// Node index.
        node: usize,
        /// The feature given.
        feature: i32,
    },
    /// A tree's root or target is out of range.
    #[error("TreeEnsemble {name:?}: {field}[{tree}] = {value}, expected within 0..{bound}")]
    Tree {
        /// Node name.
        name: String,
        /// `tree_roots` or `tree_targets`.
        field: &'static str,
        /// Tree index.
        tree: usize,
        /// The value given.
        value: u32,
        /// The exclusive bound (`n_nodes` or `n_targets`).
        bound: usize,
    },
    /// A categorical split but no category bitsets.
    #[error("TreeEnsemble {name:?}: node {node} is a categorical split but the spec has no category bitsets")]
    NoCategories {
        /// Node name.
        name: String,
        /// The first categorical node.
        node: usize,
    },
    /// `cat_offsets` decreases or points past the end of `cat_bits`.
    #[error("TreeEnsemble {name:?}: cat_offsets[{index}] = {value}, expected within {lo}..={hi} (non-decreasing, inside cat_bits)")]
    CatOffset {
        /// Node name.
        name: String,
        /// Index into `cat_offsets`.
        index: usize,
        /// The offset given.
        value: u32,
        /// The previous offset.
        lo: u32,
        /// The number of bitset words.
        hi: usize,
    },
    /// A string attribute holds a value outside its enumeration.
    #[error("TreeEnsemble attribute {field:?} is {value:?}, expected one of {expected:?}")]
    UnknownValue {
        /// The attribute (one of [`attr`]).
        field: &'static str,
        /// The value given.
        value: String,
        /// The accepted values.
        expected: &'static [&'static str],
    },
    /// A node cover is negative or not finite.
    #[error("TreeEnsemble {name:?}: node_cover[{node}] = {value}, expected finite and >= 0")]
    Cover {
        /// Node name.
        name: String,
        /// Node index.
        node: usize,
        /// The cover given.
        value: f64,
    },
    /// A leaf id is negative.
    #[error("TreeEnsemble {name:?}: leaf_ids[{node}] = {value}, expected >= 0")]
    LeafId {
        /// Node name.
        name: String,
        /// Node index.
        node: usize,
        /// The id given.
        value: i32,
    },
    /// The model builder refused a tensor (a name used twice under the prefix).
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl From<TreeSpecError> for FormatError {
    fn from(e: TreeSpecError) -> FormatError {
        match e {
            TreeSpecError::Format(f) => f,
            other => FormatError::Build(other.to_string()),
        }
    }
}

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident, $field:expr, { $($(#[$vm:meta])* $v:ident => $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v),+
        }

        impl $name {
            /// Every accepted attribute value, in declaration order.
            pub const VALUES: &'static [&'static str] = &[$($s),+];

            /// The attribute value as stored in the graph.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$v => $s),+
                }
            }

            /// Parses the attribute value.
            pub fn parse(s: &str) -> Result<Self, TreeSpecError> {
                match s {
                    $($s => Ok($name::$v),)+
                    _ => Err(TreeSpecError::UnknownValue {
                        field: $field,
                        value: s.to_string(),
                        expected: Self::VALUES,
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = TreeSpecError;
            fn from_str(s: &str) -> Result<Self, TreeSpecError> {
                Self::parse(s)
            }
        }
    };
}

str_enum!(
    /// `comparison`: how a numeric split compares `x` with the threshold.
    Comparison, attr::COMPARISON, {
        /// `x < t` goes left (XGBoost).
        Lt => "lt",
        /// `x <= t` goes left (LightGBM, scikit-learn).
        Le => "le",
    }
);

str_enum!(
    /// `input_precision`: the precision `x` is rounded to before comparing.
    Precision, attr::INPUT_PRECISION, {
        /// Rounded to f32 (XGBoost, scikit-learn trees).
        F32 => "f32",
        /// Compared as f64 (LightGBM, HistGradientBoosting).
        F64 => "f64",
    }
);

str_enum!(
    /// `aggregate`: how tree outputs combine per target.
    Aggregate, attr::AGGREGATE, {
        /// Sum of the trees.
        Sum => "sum",
        /// Sum divided by the number of trees adding to the target.
        Average => "average",
    }
);

str_enum!(
    /// `categorical_members`: where members of a category set go.
    Members, attr::CATEGORICAL_MEMBERS, {
        /// Members go left (LightGBM, HistGradientBoosting).
        Left => "left",
        /// Members go right (XGBoost).
        Right => "right",
    }
);

str_enum!(
    /// `categorical_rule`: how a categorical split reads its input `x` (rounded to
    /// `input_precision`), after NaN (which follows the missing direction): the category is
    /// `x` truncated toward zero, and a value that is not a category goes to the non-member
    /// side. The two rules differ on `-1 < x < 0` only.
    #[derive(Default)]
    CategoricalRule, attr::CATEGORICAL_RULE, {
        /// `trunc(x) < 0` is not a category, so `-1 < x < 0` is category 0 (LightGBM's
        /// `static_cast<int>` then `< 0`; scikit-learn's codes are never negative). The default.
        #[default]
        LightGbm => "lightgbm",
        /// `x < 0` is not a category, so `-1 < x < 0` goes to the non-member side (XGBoost's
        /// `InvalidCat`; `-0.0` is category 0).
        XgBoost => "xgboost",
    }
);

/// Category bitsets of the categorical splits: node `i`'s set is
/// `bits[offsets[i]..offsets[i + 1]]` (`offsets` has `n_nodes + 1` entries).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CategorySets {
    /// `cat_offsets`: `n_nodes + 1` non-decreasing word offsets.
    pub offsets: Vec<u32>,
    /// `cat_bits`: bitset words; category `c` is bit `c % 32` of word `c / 32`.
    pub bits: Vec<u32>,
}

/// A `TreeEnsemble` node as typed struct-of-arrays (`docs/OPS.md` § `TreeEnsemble`): the one
/// way importers, exporters and tests write the op.
///
/// Fields are public so that a caller holding whole arrays can fill them directly; the
/// [`leaf`](Self::leaf), [`split`](Self::split), [`categorical_split`](Self::categorical_split)
/// and [`push_tree`](Self::push_tree) methods build one node at a time.
/// [`write`](Self::write) checks the cheap invariants ([`validate`](Self::validate)) and adds
/// the tensors and the node to a [`ModelBuilder`]; tests that need an invalid node (hostile
/// files) use [`add_unchecked`](Self::add_unchecked).
///
/// ```
/// use mle_format::tree::{flags, Comparison, Precision, TreeEnsembleSpec};
/// use mle_format::*;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // One stump: x0 < 0.5 → 1.0, else 2.0; a missing x0 goes left.
/// let mut spec = TreeEnsembleSpec::new(1, 1, Comparison::Lt, Precision::F32);
/// let root = spec.split(0, 0.5, 1, 2, flags::MISSING_LEFT);
/// spec.leaf(&[1.0]);
/// spec.leaf(&[2.0]);
/// spec.push_tree(root, 0, 1.0);
/// spec.base_scores = vec![0.5];
///
/// let meta = Metadata::new("example", "stump", Task::Regression, vec!["x0".into()],
///     DType::F32, &[("prediction", DType::F64)]);
/// let mut b = ModelBuilder::new(meta);
/// spec.write(&mut b, "trees", "X", "prediction")?;
/// b.set_inputs(vec![ValueInfo { name: "X".into(), dtype: DType::F32, shape: vec![-1, 1] }]);
/// b.set_outputs(vec![ValueInfo { name: "prediction".into(), dtype: DType::F64, shape: vec![-1, 1] }]);
/// let bytes = b.to_bytes(&WriteOptions::default())?;
///
/// let file = MleFile::from_bytes(&bytes, "stump.mle", &ReadOptions::default())?;
/// let node = &file.graph().nodes[0];
/// assert_eq!(node.attr(tree::attr::COMPARISON), Some(&Attr::Str("lt".into())));
/// assert_eq!(file.tensor_as::<u8>("trees.flags")?, &[flags::MISSING_LEFT, flags::LEAF, flags::LEAF]);
///
/// // The invariants are checked before anything is written.
/// spec.left[0] = 0;
/// assert!(spec.validate().is_err());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TreeEnsembleSpec {
    /// `n_targets`: columns of the output.
    pub n_targets: usize,
    /// `leaf_dim`: values per leaf, 1 or `n_targets`.
    pub leaf_dim: usize,
    /// `tree_roots`: root node of each tree.
    pub roots: Vec<u32>,
    /// `tree_targets` (written when present): target each tree adds to.
    pub targets: Option<Vec<u32>>,
    /// `tree_weights` (written when present): weight of each tree.
    pub weights: Option<Vec<f64>>,
    /// `feature`: split feature per node (0 on leaves).
    pub feature: Vec<i32>,
    /// `threshold`: split threshold per node (0 on leaves).
    pub threshold: Vec<f64>,
    /// `left`: left child per node (0 on leaves).
    pub left: Vec<u32>,
    /// `right`: right child per node (0 on leaves).
    pub right: Vec<u32>,
    /// `flags`: [`flags`] bits per node.
    pub flags: Vec<u8>,
    /// `leaf_values`: `leaf_dim` values per node (zeros on internal nodes).
    pub leaf_values: Vec<f64>,
    /// `comparison`.
    pub comparison: Comparison,
    /// `input_precision`.
    pub input_precision: Precision,
    /// `aggregate`.
    pub aggregate: Aggregate,
    /// `base_scores`: one per target, added after aggregation.
    pub base_scores: Vec<f64>,
    /// `cat_offsets` / `cat_bits` (written when present; required by categorical splits).
    pub categories: Option<CategorySets>,
    /// `categorical_members` (written with the category bitsets).
    pub categorical_members: Members,
    /// `categorical_rule` (written with the category bitsets).
    pub categorical_rule: CategoricalRule,
}

fn index(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl TreeEnsembleSpec {
    /// An empty ensemble: no nodes or trees, aggregate `sum`, base scores zero, no category
    /// bitsets, members `left`.
    pub fn new(
        n_targets: usize,
        leaf_dim: usize,
        comparison: Comparison,
        input_precision: Precision,
    ) -> TreeEnsembleSpec {
        TreeEnsembleSpec {
            n_targets,
            leaf_dim,
            roots: Vec::new(),
            targets: None,
            weights: None,
            feature: Vec::new(),
            threshold: Vec::new(),
            left: Vec::new(),
            right: Vec::new(),
            flags: Vec::new(),
            leaf_values: Vec::new(),
            comparison,
            input_precision,
            aggregate: Aggregate::Sum,
            base_scores: vec![0.0; n_targets],
            categories: None,
            categorical_members: Members::Left,
            categorical_rule: CategoricalRule::LightGbm,
        }
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.feature.len()
    }

    /// Number of trees.
    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    fn push_node(&mut self, feature: i32, threshold: f64, left: u32, right: u32, fl: u8) -> u32 {
        let at = index(self.feature.len());
        self.feature.push(feature);
        self.threshold.push(threshold);
        self.left.push(left);
        self.right.push(right);
        self.flags.push(fl);
        if let Some(c) = &mut self.categories {
            c.offsets.push(index(c.bits.len()));
        }
        at
    }

    /// Appends a leaf with `values` (`leaf_dim` of them; missing ones are zero, extra ones
    /// dropped) and returns its index.
    pub fn leaf(&mut self, values: &[f64]) -> u32 {
        let at = self.push_node(0, 0.0, 0, 0, flags::LEAF);
        let d = self.leaf_dim;
        self.leaf_values
            .extend((0..d).map(|k| values.get(k).copied().unwrap_or(0.0)));
        at
    }

    /// Appends a numeric split (`flags` without [`flags::LEAF`]) and returns its index.
    pub fn split(&mut self, feature: i32, threshold: f64, left: u32, right: u32, fl: u8) -> u32 {
        let at = self.push_node(feature, threshold, left, right, fl & !flags::LEAF);
        let d = self.leaf_dim;
        self.leaf_values.extend(std::iter::repeat_n(0.0, d));
        at
    }

    /// Appends a categorical split whose category set is the bitset `words` and returns its
    /// index ([`flags::CATEGORICAL`] is added to `fl`). The category bitsets are created on
    /// first use.
    pub fn categorical_split(
        &mut self,
        feature: i32,
        words: &[u32],
        left: u32,
        right: u32,
        fl: u8,
    ) -> u32 {
        let n = self.feature.len();
        let c = self.categories.get_or_insert_with(|| CategorySets {
            offsets: vec![0; n + 1],
            bits: Vec::new(),
        });
        c.bits.extend_from_slice(words);
        // Its start is the last offset so far; the offset pushed with the node is its end.
        let at = self.push_node(
            feature,
            0.0,
            left,
            right,
            (fl | flags::CATEGORICAL) & !flags::LEAF,
        );
        let d = self.leaf_dim;
        self.leaf_values.extend(std::iter::repeat_n(0.0, d));
        at
    }

    /// Appends a tree rooted at `root` adding to `target` with `weight`. `tree_targets` /
    /// `tree_weights` are created (earlier trees at target 0, weight 1) when a tree first
    /// differs from those defaults.
    pub fn push_tree(&mut self, root: u32, target: u32, weight: f64) {
        let k = self.roots.len();
        if target != 0 || self.targets.is_some() {
            self.targets.get_or_insert_with(|| vec![0; k]).push(target);
        }
        if weight != 1.0 || self.weights.is_some() {
            self.weights
                .get_or_insert_with(|| vec![1.0; k])
                .push(weight);
        }
        self.roots.push(root);
    }

    /// Checks the cheap invariants: `n_targets >= 1`, `leaf_dim` 1 or `n_targets`, every array
    /// as long as the node count, tree count or `n_targets` says, flags within
    /// [`flags::ALL`], children of internal nodes pointing forward inside the arrays,
    /// non-negative split features, roots and targets in range, and category bitsets present
    /// and well formed when any split is categorical. `name` is the node name for errors.
    pub fn validate_as(&self, name: &str) -> Result<(), TreeSpecError> {
        let nm = || name.to_string();
        if self.n_targets == 0 {
            return Err(TreeSpecError::NoTargets { name: nm() });
        }
        if self.leaf_dim != 1 && self.leaf_dim != self.n_targets {
            return Err(TreeSpecError::LeafDim {
                name: nm(),
                leaf_dim: self.leaf_dim,
                n_targets: self.n_targets,
            });
        }
        let n = self.n_nodes();
        if n >= u32::MAX as usize {
            return Err(TreeSpecError::TooLarge {
                name: nm(),
                field: attr::FEATURE,
                len: n,
            });
        }
        let length = |field, len: usize, expected: usize, bound| {
            if len == expected {
                Ok(())
            } else {
                Err(TreeSpecError::Length {
                    name: nm(),
                    field,
                    len,
                    expected,
                    bound,
                })
            }
        };
        length(attr::THRESHOLD, self.threshold.len(), n, "n_nodes")?;
        length(attr::LEFT, self.left.len(), n, "n_nodes")?;
        length(attr::RIGHT, self.right.len(), n, "n_nodes")?;
        length(attr::FLAGS, self.flags.len(), n, "n_nodes")?;
        let values = n.saturating_mul(self.leaf_dim);
        length(
            attr::LEAF_VALUES,
            self.leaf_values.len(),
            values,
            "n_nodes * leaf_dim",
        )?;
        let n_trees = self.n_trees();
        if let Some(t) = &self.targets {
            length(attr::TREE_TARGETS, t.len(), n_trees, "n_trees")?;
        }
        if let Some(w) = &self.weights {
            length(attr::TREE_WEIGHTS, w.len(), n_trees, "n_trees")?;
        }
        length(
            attr::BASE_SCORES,
            self.base_scores.len(),
            self.n_targets,
            "n_targets",
        )?;

        let mut first_categorical = None;
        let nodes = self
            .feature
            .iter()
            .zip(&self.left)
            .zip(&self.right)
            .zip(&self.flags);
        for (i, (((&feature, &l), &r), &fl)) in nodes.enumerate() {
            if fl & !flags::ALL != 0 {
                return Err(TreeSpecError::UndefinedFlags {
                    name: nm(),
                    node: i,
                    value: fl,
                });
            }
            if fl & flags::LEAF != 0 {
                continue;
            }
            for (field, child) in [(attr::LEFT, l), (attr::RIGHT, r)] {
                if child as usize <= i || child as usize >= n {
                    return Err(TreeSpecError::Child {
                        name: nm(),
                        field,
                        node: i,
                        child,
                        n_nodes: n,
                    });
                }
            }
            if feature < 0 {
                return Err(TreeSpecError::Feature {
                    name: nm(),
                    node: i,
                    feature,
                });
            }
            if fl & flags::CATEGORICAL != 0 && first_categorical.is_none() {
                first_categorical = Some(i);
            }
        }
        let tree = |field, tree, value: u32, bound: usize| {
            if (value as usize) < bound {
                Ok(())
            } else {
                Err(TreeSpecError::Tree {
                    name: nm(),
                    field,
                    tree,
                    value,
                    bound,
                })
            }
        };
        for (k, &root) in self.roots.iter().enumerate() {
            tree(attr::TREE_ROOTS, k, root, n)?;
        }
        if let Some(t) = &self.targets {
            for (k, &target) in t.iter().enumerate() {
                tree(attr::TREE_TARGETS, k, target, self.n_targets)?;
            }
        }
        match (&self.categories, first_categorical) {
            (None, Some(node)) => return Err(TreeSpecError::NoCategories { name: nm(), node }),
            (None, None) => {}
            (Some(c), _) => {
                length(attr::CAT_OFFSETS, c.offsets.len(), n + 1, "n_nodes + 1")?;
                if c.bits.len() >= u32::MAX as usize {
                    return Err(TreeSpecError::TooLarge {
                        name: nm(),
                        field: attr::CAT_BITS,
                        len: c.bits.len(),
                    });
                }
                let mut lo = 0;
                for (index, &value) in c.offsets.iter().enumerate() {
                    if value < lo || value as usize > c.bits.len() {
                        return Err(TreeSpecError::CatOffset {
                            name: nm(),
                            index,
                            value,
                            lo,
                            hi: c.bits.len(),
                        });
                    }
                    lo = value;
                }
            }
        }
        Ok(())
    }

    /// [`validate_as`](Self::validate_as) with the node name `trees`.
    pub fn validate(&self) -> Result<(), TreeSpecError> {
        self.validate_as("trees")
    }

    /// Validates, then adds the tensors (named `{name}.roots`, `{name}.feature`, ...) and the
    /// `TreeEnsemble` node `name` reading `input` and producing `output` to `b`.
    pub fn write(
        &self,
        b: &mut ModelBuilder,
        name: &str,
        input: &str,
        output: &str,
    ) -> Result<(), TreeSpecError> {
        self.validate_as(name)?;
        let node = self.add_unchecked(b, name, input, output)?;
        b.push_node(node);
        Ok(())
    }

    /// [`write`](Self::write) with the explanation annotations `ann` (`node_cover`,
    /// `leaf_ids`): both the spec and `ann` are validated before anything is added.
    pub fn write_annotated(
        &self,
        ann: &TreeAnnotations,
        b: &mut ModelBuilder,
        name: &str,
        input: &str,
        output: &str,
    ) -> Result<(), TreeSpecError> {
        self.validate_as(name)?;
        ann.validate_as(self, name)?;
        let node = self.add_unchecked(b, name, input, output)?;
        for (_, suffix, data) in ann.arrays() {
            let t = format!("{name}.{suffix}");
            let shape = [data.len() as u64];
            match data {
                TreeArray::U8(v) => b.add_tensor(&t, &shape, v)?,
                TreeArray::I32(v) => b.add_tensor(&t, &shape, v)?,
                TreeArray::U32(v) => b.add_tensor(&t, &shape, v)?,
                TreeArray::F64(v) => b.add_tensor(&t, &shape, v)?,
            }
        }
        b.push_node(ann.annotate(node, name));
        Ok(())
    }

    /// Adds the tensors to `b` without validating and returns the node, for the caller to
    /// adjust and push (tests of invalid ensembles); everything else uses
    /// [`write`](Self::write).
    pub fn add_unchecked(
        &self,
        b: &mut ModelBuilder,
        name: &str,
        input: &str,
        output: &str,
    ) -> Result<Node, FormatError> {
        for (_, suffix, data) in self.arrays() {
            let t = format!("{name}.{suffix}");
            let shape = [data.len() as u64];
            match data {
                TreeArray::U8(v) => b.add_tensor(&t, &shape, v)?,
                TreeArray::I32(v) => b.add_tensor(&t, &shape, v)?,
                TreeArray::U32(v) => b.add_tensor(&t, &shape, v)?,
                TreeArray::F64(v) => b.add_tensor(&t, &shape, v)?,
            }
        }
        Ok(self.node(name, input, output))
    }

    /// The node `name` (reading `input`, producing `output`) without its tensors: each
    /// tensor attribute names `{name}.{suffix}` of [`arrays`](Self::arrays). For writers that
    /// store the arrays themselves (the Python exporters); everything else uses
    /// [`write`](Self::write).
    pub fn node(&self, name: &str, input: &str, output: &str) -> Node {
        let mut node = Node::new(name, "TreeEnsemble", &[input], &[output])
            .with(attr::N_TARGETS, Attr::Int(self.n_targets as i64))
            .with(attr::LEAF_DIM, Attr::Int(self.leaf_dim as i64))
            .with(attr::COMPARISON, Attr::Str(self.comparison.as_str().into()))
            .with(
                attr::INPUT_PRECISION,
                Attr::Str(self.input_precision.as_str().into()),
            )
            .with(attr::AGGREGATE, Attr::Str(self.aggregate.as_str().into()))
            .with(attr::BASE_SCORES, Attr::Floats(self.base_scores.clone()));
        for (key, suffix, _) in self.arrays() {
            node = node.with(key, Attr::Tensor(format!("{name}.{suffix}")));
        }
        if self.categories.is_some() {
            node = node
                .with(
                    attr::CATEGORICAL_MEMBERS,
                    Attr::Str(self.categorical_members.as_str().into()),
                )
                .with(
                    attr::CATEGORICAL_RULE,
                    Attr::Str(self.categorical_rule.as_str().into()),
                );
        }
        node
    }

    /// The node's arrays as `(attribute, tensor name suffix, data)`, the optional ones only
    /// when present, in the order they are written.
    pub fn arrays(&self) -> Vec<(&'static str, &'static str, TreeArray<'_>)> {
        let mut v = vec![
            (attr::FEATURE, "feature", TreeArray::I32(&self.feature)),
            (
                attr::THRESHOLD,
                "threshold",
                TreeArray::F64(&self.threshold),
            ),
            (attr::LEFT, "left", TreeArray::U32(&self.left)),
            (attr::RIGHT, "right", TreeArray::U32(&self.right)),
            (attr::FLAGS, "flags", TreeArray::U8(&self.flags)),
            (
                attr::LEAF_VALUES,
                "leaf_values",
                TreeArray::F64(&self.leaf_values),
            ),
            (attr::TREE_ROOTS, "roots", TreeArray::U32(&self.roots)),
        ];
        if let Some(t) = &self.targets {
            v.push((attr::TREE_TARGETS, "targets", TreeArray::U32(t)));
        }
        if let Some(w) = &self.weights {
            v.push((attr::TREE_WEIGHTS, "weights", TreeArray::F64(w)));
        }
        if let Some(c) = &self.categories {
            v.push((attr::CAT_OFFSETS, "cat_offsets", TreeArray::U32(&c.offsets)));
            v.push((attr::CAT_BITS, "cat_bits", TreeArray::U32(&c.bits)));
        }
        v
    }
}

/// The optional per-node arrays that explanations and leaf indices read (`docs/OPS.md` §
/// `TreeEnsemble`: `node_cover`, `leaf_ids`), written next to a [`TreeEnsembleSpec`] by
/// [`TreeEnsembleSpec::write_annotated`]. Absent arrays are not written: a file without them
/// is byte-identical to one written by [`TreeEnsembleSpec::write`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeAnnotations {
    /// `node_cover`: one cover per node (internal nodes and leaves), finite and `>= 0`.
    pub node_cover: Option<Vec<f64>>,
    /// `leaf_ids`: the framework's number of each leaf (any value `>= 0` on internal nodes).
    pub leaf_ids: Option<Vec<i32>>,
}

impl TreeAnnotations {
    /// True when neither array is present.
    pub fn is_empty(&self) -> bool {
        self.node_cover.is_none() && self.leaf_ids.is_none()
    }

    /// Checks the arrays against `spec`: `n_nodes` entries each, covers finite and
    /// non-negative, leaf ids non-negative. `name` is the node name for errors.
    pub fn validate_as(&self, spec: &TreeEnsembleSpec, name: &str) -> Result<(), TreeSpecError> {
        let n = spec.n_nodes();
        let length = |field, len: usize| {
            if len == n {
                Ok(())
            } else {
                Err(TreeSpecError::Length {
                    name: name.to_string(),
                    field,
                    len,
                    expected: n,
                    bound: "n_nodes",
                })
            }
        };
        if let Some(c) = &self.node_cover {
            length(attr::NODE_COVER, c.len())?;
            if let Some((node, &value)) = c
                .iter()
                .enumerate()
                .find(|(_, v)| !(v.is_finite() && **v >= 0.0))
            {
                return Err(TreeSpecError::Cover {
                    name: name.to_string(),
                    node,
                    value,
                });
            }
        }
        if let Some(ids) = &self.leaf_ids {
            length(attr::LEAF_IDS, ids.len())?;
            if let Some((node, &value)) = ids.iter().enumerate().find(|(_, v)| **v < 0) {
                return Err(TreeSpecError::LeafId {
                    name: name.to_string(),
                    node,
                    value,
                });
            }
        }
        Ok(())
    }

    /// The present arrays as `(attribute, tensor name suffix, data)`, in the order they are
    /// written (after the spec's own arrays).
    pub fn arrays(&self) -> Vec<(&'static str, &'static str, TreeArray<'_>)> {
        let mut v = Vec::new();
        if let Some(c) = &self.node_cover {
            v.push((attr::NODE_COVER, "node_cover", TreeArray::F64(c)));
        }
        if let Some(ids) = &self.leaf_ids {
            v.push((attr::LEAF_IDS, "leaf_ids", TreeArray::I32(ids)));
        }
        v
    }

    /// `node` with a tensor attribute naming `{name}.{suffix}` for each present array (for
    /// writers that store the arrays themselves, as with [`TreeEnsembleSpec::node`]).
    pub fn annotate(&self, mut node: Node, name: &str) -> Node {
        for (key, suffix, _) in self.arrays() {
            node = node.with(key, Attr::Tensor(format!("{name}.{suffix}")));
        }
        node
    }
}

/// One array of a [`TreeEnsembleSpec`], borrowed, with its element type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum TreeArray<'a> {
    /// `flags`.
    U8(&'a [u8]),
    /// `feature`.
    I32(&'a [i32]),
    /// Child, root and target indices, category offsets and bitset words.
    U32(&'a [u32]),
    /// Thresholds, leaf values and tree weights.
    F64(&'a [f64]),
}

impl TreeArray<'_> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        match self {
            TreeArray::U8(v) => v.len(),
            TreeArray::I32(v) => v.len(),
            TreeArray::U32(v) => v.len(),
            TreeArray::F64(v) => v.len(),
        }
    }

    /// True when the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, Metadata, MleFile, ReadOptions, Task, WriteOptions};

    /// Two trees over 2 features: a numeric stump and a categorical stump adding to target 1.
    fn two_trees() -> TreeEnsembleSpec {
        let mut s = TreeEnsembleSpec::new(2, 1, Comparison::Le, Precision::F64);
        let r0 = s.split(0, 1.5, 1, 2, flags::MISSING_LEFT);
        s.leaf(&[-1.0]);
        s.leaf(&[1.0]);
        s.push_tree(r0, 0, 1.0);
        let r1 = s.categorical_split(1, &[0b1010], 4, 5, 0);
        s.leaf(&[3.0]);
        s.leaf(&[4.0]);
        s.push_tree(r1, 1, 0.5);
        s.categorical_members = Members::Right;
        s.categorical_rule = CategoricalRule::XgBoost;
        s
    }

    fn meta() -> Metadata {
        Metadata::new(
            "test",
            "trees",
            Task::Regression,
            vec!["a".into(), "b".into()],
            DType::F64,
            &[("prediction", DType::F64)],
        )
    }

    #[test]
    fn builder_fills_optional_arrays_on_first_use() {
        let s = two_trees();
        assert_eq!(s.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(s.targets.as_deref(), Some(&[0, 1][..]));
        assert_eq!(s.weights.as_deref(), Some(&[1.0, 0.5][..]));
        let c = s
            .categories
            .as_ref()
            .map(|c| (c.offsets.clone(), c.bits.clone()));
        assert_eq!(c, Some((vec![0, 0, 0, 0, 1, 1, 1], vec![0b1010])));
        assert_eq!(
            s.flags,
            [
                flags::MISSING_LEFT,
                flags::LEAF,
                flags::LEAF,
                flags::CATEGORICAL,
                flags::LEAF,
                flags::LEAF
            ]
        );
        let mut plain = TreeEnsembleSpec::new(1, 1, Comparison::Lt, Precision::F32);
        let r = plain.split(0, 0.0, 1, 2, flags::LEAF);
        plain.leaf(&[1.0]);
        plain.leaf(&[2.0]);
        plain.push_tree(r, 0, 1.0);
        assert_eq!(
            (plain.targets, plain.weights, plain.categories),
            (None, None, None)
        );
        assert_eq!(plain.flags[0], 0, "split() clears LEAF");
    }

    #[test]
    fn write_round_trips_every_attribute() {
        let s = two_trees();
        let mut b = ModelBuilder::new(meta());
        s.write(&mut b, "ens", "X", "y").unwrap();
        let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
        let f = MleFile::from_bytes(&bytes, "t.mle", &ReadOptions::default()).unwrap();
        let node = &f.graph().nodes[0];
        assert_eq!(
            (node.name.as_str(), node.op.as_str()),
            ("ens", "TreeEnsemble")
        );
        assert_eq!(
            (node.inputs.clone(), node.outputs.clone()),
            (vec!["X".to_string()], vec!["y".to_string()])
        );
        let tensor = |key: &str| match node.attr(key) {
            Some(Attr::Tensor(n)) => n.clone(),
            other => panic!("{key}: {other:?}"),
        };
        assert_eq!(
            f.tensor_as::<u32>(&tensor(attr::TREE_ROOTS)).unwrap(),
            &s.roots[..]
        );
        assert_eq!(
            f.tensor_as::<u32>(&tensor(attr::TREE_TARGETS)).unwrap(),
            &[0, 1]
        );
        assert_eq!(
            f.tensor_as::<f64>(&tensor(attr::TREE_WEIGHTS)).unwrap(),
            &[1.0, 0.5]
        );
        assert_eq!(
            f.tensor_as::<i32>(&tensor(attr::FEATURE)).unwrap(),
            &s.feature[..]
        );
        assert_eq!(
            f.tensor_as::<f64>(&tensor(attr::THRESHOLD)).unwrap(),
            &s.threshold[..]
        );
        assert_eq!(
            f.tensor_as::<u32>(&tensor(attr::LEFT)).unwrap(),
            &s.left[..]
        );
        assert_eq!(
            f.tensor_as::<u32>(&tensor(attr::RIGHT)).unwrap(),
            &s.right[..]
        );
        assert_eq!(
            f.tensor_as::<u8>(&tensor(attr::FLAGS)).unwrap(),
            &s.flags[..]
        );
        assert_eq!(
            f.tensor_as::<f64>(&tensor(attr::LEAF_VALUES)).unwrap(),
            &s.leaf_values[..]
        );
        assert_eq!(
            f.tensor_as::<u32>(&tensor(attr::CAT_OFFSETS)).unwrap(),
            &[0, 0, 0, 0, 1, 1, 1]
        );
        assert_eq!(
            f.tensor_as::<u32>(&tensor(attr::CAT_BITS)).unwrap(),
            &[0b1010]
        );
        let s_attr = |key: &str| node.attr(key).cloned();
        assert_eq!(s_attr(attr::N_TARGETS), Some(Attr::Int(2)));
        assert_eq!(s_attr(attr::LEAF_DIM), Some(Attr::Int(1)));
        assert_eq!(s_attr(attr::COMPARISON), Some(Attr::Str("le".into())));
        assert_eq!(s_attr(attr::INPUT_PRECISION), Some(Attr::Str("f64".into())));
        assert_eq!(s_attr(attr::AGGREGATE), Some(Attr::Str("sum".into())));
        assert_eq!(
            s_attr(attr::BASE_SCORES),
            Some(Attr::Floats(vec![0.0, 0.0]))
        );
        assert_eq!(
            s_attr(attr::CATEGORICAL_MEMBERS),
            Some(Attr::Str("right".into()))
        );
        assert_eq!(
            s_attr(attr::CATEGORICAL_RULE),
            Some(Attr::Str("xgboost".into()))
        );
        let keys: Vec<&str> = node.attrs.keys().map(String::as_str).collect();
        let mut all: Vec<&str> = attr::NAMED.iter().map(|(_, a)| *a).collect();
        all.sort_unstable();
        assert_eq!(keys, all, "every attribute of docs/OPS.md, each once");
    }

    #[test]
    fn optional_attributes_are_absent_when_unused() {
        let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Lt, Precision::F32);
        let l = s.leaf(&[2.0]);
        s.push_tree(l, 0, 1.0);
        let mut b = ModelBuilder::new(meta());
        s.write(&mut b, "t", "X", "y").unwrap();
        let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
        let f = MleFile::from_bytes(&bytes, "t.mle", &ReadOptions::default()).unwrap();
        let node = &f.graph().nodes[0];
        for key in [
            attr::TREE_TARGETS,
            attr::TREE_WEIGHTS,
            attr::CAT_OFFSETS,
            attr::CAT_BITS,
            attr::CATEGORICAL_MEMBERS,
            attr::CATEGORICAL_RULE,
        ] {
            assert!(node.attr(key).is_none(), "{key}");
        }
    }

    fn err(s: &TreeEnsembleSpec) -> String {
        match s.validate() {
            Ok(()) => panic!("accepted an invalid spec"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn validate_names_the_field_and_bound() {
        let mut s = two_trees();
        s.left[0] = 0;
        assert!(
            err(&s).contains("left[0] = 0, expected within 0+1..6"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.right[3] = 6;
        assert!(err(&s).contains("right[3] = 6"), "{}", err(&s));
        let mut s = two_trees();
        s.flags[1] |= 0x20;
        assert!(
            err(&s).contains("flags[1] = 0x21 has bits outside 0x1f"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.threshold.pop();
        assert!(
            err(&s).contains("threshold has 5 elements, expected 6 (n_nodes)"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.leaf_values.push(0.0);
        assert!(
            err(&s).contains("leaf_values has 7 elements, expected 6"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.weights = Some(vec![1.0]);
        assert!(
            err(&s).contains("tree_weights has 1 elements, expected 2 (n_trees)"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.base_scores = vec![0.0];
        assert!(
            err(&s).contains("base_scores has 1 elements, expected 2 (n_targets)"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.targets = Some(vec![0, 2]);
        assert!(
            err(&s).contains("tree_targets[1] = 2, expected within 0..2"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.roots[1] = 6;
        assert!(
            err(&s).contains("tree_roots[1] = 6, expected within 0..6"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.feature[0] = -1;
        assert!(err(&s).contains("feature[0] = -1"), "{}", err(&s));
        let mut s = two_trees();
        s.categories = None;
        assert!(
            err(&s).contains("node 3 is a categorical split"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        if let Some(c) = &mut s.categories {
            c.offsets[5] = 0;
        }
        assert!(
            err(&s).contains("cat_offsets[5] = 0, expected within 1..=1"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        if let Some(c) = &mut s.categories {
            c.offsets.pop();
        }
        assert!(
            err(&s).contains("cat_offsets has 6 elements, expected 7"),
            "{}",
            err(&s)
        );
        let mut s = two_trees();
        s.leaf_dim = 3;
        assert!(
            err(&s).contains("leaf_dim is 3, expected 1 or n_targets (2)"),
            "{}",
            err(&s)
        );
        let s = TreeEnsembleSpec::new(0, 1, Comparison::Lt, Precision::F32);
        assert!(err(&s).contains("n_targets is 0"), "{}", err(&s));
    }

    #[test]
    fn write_refuses_an_invalid_spec_and_adds_nothing() {
        let mut s = two_trees();
        s.left[0] = 0;
        let mut b = ModelBuilder::new(meta());
        assert!(matches!(
            s.write(&mut b, "t", "X", "y"),
            Err(TreeSpecError::Child { node: 0, .. })
        ));
        // Nothing was added: the valid spec writes under the same name afterwards.
        two_trees().write(&mut b, "t", "X", "y").unwrap();
        // A second write under one name is a builder error, not a panic.
        assert!(matches!(
            two_trees().write(&mut b, "t", "X", "y"),
            Err(TreeSpecError::Format(_))
        ));
    }

    #[test]
    fn add_unchecked_writes_invalid_arrays_for_hostile_tests() {
        let mut s = two_trees();
        s.left[0] = 0;
        let mut b = ModelBuilder::new(meta());
        let node = s.add_unchecked(&mut b, "t", "X", "y").unwrap();
        assert_eq!(node.attr(attr::LEFT), Some(&Attr::Tensor("t.left".into())));
    }

    #[test]
    fn annotations_are_written_validated_and_optional() {
        let s = two_trees();
        let ann = TreeAnnotations {
            node_cover: Some(vec![10.0, 4.0, 6.0, 8.0, 5.0, 3.0]),
            leaf_ids: Some(vec![0, 1, 2, 0, 1, 2]),
        };
        let mut b = ModelBuilder::new(meta());
        s.write_annotated(&ann, &mut b, "ens", "X", "y").unwrap();
        let bytes = b.to_bytes(&WriteOptions::default()).unwrap();
        let f = MleFile::from_bytes(&bytes, "t.mle", &ReadOptions::default()).unwrap();
        let node = &f.graph().nodes[0];
        assert_eq!(
            node.attr(attr::NODE_COVER),
            Some(&Attr::Tensor("ens.node_cover".into()))
        );
        assert_eq!(
            f.tensor_as::<f64>("ens.node_cover").unwrap(),
            &[10.0, 4.0, 6.0, 8.0, 5.0, 3.0]
        );
        assert_eq!(
            f.tensor_as::<i32>("ens.leaf_ids").unwrap(),
            &[0, 1, 2, 0, 1, 2]
        );
        // Without annotations the bytes are those of `write`.
        let (mut b1, mut b2) = (ModelBuilder::new(meta()), ModelBuilder::new(meta()));
        s.write(&mut b1, "ens", "X", "y").unwrap();
        s.write_annotated(&TreeAnnotations::default(), &mut b2, "ens", "X", "y")
            .unwrap();
        let o = WriteOptions::default();
        assert_eq!(b1.to_bytes(&o).unwrap(), b2.to_bytes(&o).unwrap());
        let bad = |a: TreeAnnotations| {
            let mut b = ModelBuilder::new(meta());
            match s.write_annotated(&a, &mut b, "ens", "X", "y") {
                Ok(()) => panic!("accepted {a:?}"),
                Err(e) => e.to_string(),
            }
        };
        let e = bad(TreeAnnotations {
            node_cover: Some(vec![1.0; 5]),
            leaf_ids: None,
        });
        assert!(
            e.contains("node_cover has 5 elements, expected 6 (n_nodes)"),
            "{e}"
        );
        let e = bad(TreeAnnotations {
            node_cover: Some(vec![1.0, 1.0, -1.0, 1.0, 1.0, 1.0]),
            leaf_ids: None,
        });
        assert!(
            e.contains("node_cover[2] = -1, expected finite and >= 0"),
            "{e}"
        );
        let e = bad(TreeAnnotations {
            node_cover: Some(vec![1.0, f64::NAN, 1.0, 1.0, 1.0, 1.0]),
            leaf_ids: None,
        });
        assert!(e.contains("node_cover[1] = NaN"), "{e}");
        let e = bad(TreeAnnotations {
            node_cover: None,
            leaf_ids: Some(vec![0, 0, -3, 0, 0, 0]),
        });
        assert!(e.contains("leaf_ids[2] = -3, expected >= 0"), "{e}");
        let ops = include_str!("../../docs/OPS.md");
        for (name, value) in attr::ANNOTATIONS_NAMED {
            assert_eq!(name.to_lowercase(), value);
            assert!(
                ops.contains(&format!("`{value}`")),
                "{value} missing from OPS.md"
            );
        }
    }

    #[test]
    fn enums_parse_their_attribute_values_only() {
        assert_eq!("lt".parse::<Comparison>().ok(), Some(Comparison::Lt));
        assert_eq!(Precision::parse("f64").ok(), Some(Precision::F64));
        assert_eq!(Aggregate::parse("average").ok(), Some(Aggregate::Average));
        assert_eq!(Members::Right.to_string(), "right");
        let e = Comparison::parse("LE").map_err(|e| e.to_string());
        assert_eq!(
            e,
            Err(
                "TreeEnsemble attribute \"comparison\" is \"LE\", expected one of [\"lt\", \"le\"]"
                    .to_string()
            )
        );
    }

    #[test]
    fn flag_bits_are_distinct_and_all_covers_them() {
        let bits = [
            flags::LEAF,
            flags::MISSING_LEFT,
            flags::CATEGORICAL,
            flags::ZERO_IS_MISSING,
            flags::NAN_IS_ZERO,
        ];
        assert_eq!(bits.iter().fold(0, |a, b| a | b), flags::ALL);
        assert!(bits.iter().all(|b| b.count_ones() == 1));
        assert_eq!(
            bits.iter().map(|b| b.trailing_zeros()).collect::<Vec<_>>(),
            [0, 1, 2, 3, 4]
        );
        assert_eq!(flags::NAMED.map(|(_, b)| b), bits);
    }

    #[test]
    fn named_lists_match_the_constants_and_ops_md() {
        let ops = include_str!("../../docs/OPS.md");
        for (name, value) in attr::NAMED {
            assert_eq!(name.to_lowercase(), value, "constant name of {value}");
            assert!(
                ops.contains(&format!("`{value}`")),
                "{value} missing from OPS.md"
            );
        }
    }
}
