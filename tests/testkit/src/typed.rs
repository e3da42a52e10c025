//! A model with typed input features (a string category, a float, an integer category) for
//! the front ends' tests, and its values derived by hand from the strings themselves (an
//! oracle independent of the executor).
//!
//! Features, in order: `city` (category, string categories [`CITIES`]), `x` (float), `store`
//! (category, integer categories [`STORES`]). The graph: `X → Lookup(city) → Lookup(store) →`
//! three trees on the codes, summed into the margin `m`:
//! - `city` is `Zürich` (code 1) → `CITY_IN`, else (another city, an unknown one or missing:
//!   code NaN goes right) → `CITY_OUT`;
//! - `x < 0.5` or missing → `X_LO`, else `X_HI`;
//! - `store` is 300 (code 3) → `STORE_IN`, else → `STORE_OUT`.
//!
//! A regressor predicts `m` ([`Typed::Regressor`]). A binary classifier
//! ([`Typed::Classifier`]) has `p = 1 / (1 + e^-m)`, probabilities `[1 - p, p]` and the label
//! `yes` when `p > 0.5` (else `no`).

use mle_format::tree::{flags, Comparison, Precision, TreeAnnotations, TreeEnsembleSpec};
use mle_format::{
    Attr, ClassLabels, DType, FeatureKind, FeatureSpec, Metadata, ModelBuilder, Node, Task,
    ValueInfo, WriteOptions,
};

/// The string categories of `city`, in code order.
pub const CITIES: [&str; 4] = ["Paris", "Zürich", "Oslo", "a city with a rather long name"];
/// The integer categories of `store`, in code order.
pub const STORES: [i64; 5] = [-3, 0, 2, 300, 1000];
/// The feature names.
pub const FEATURES: [&str; 3] = ["city", "x", "store"];
/// The classifier's class labels.
pub const CLASSES: [&str; 2] = ["no", "yes"];

/// Which model to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Typed {
    /// Predicts the margin (regression, f64).
    Regressor,
    /// A binary classifier over the margin (labels [`CLASSES`]).
    Classifier,
}

/// Leaves of the regressor: (city in, city out, x low, x high, store in, store out).
const REG: [f64; 6] = [10.0, 20.0, 1.0, 2.0, 100.0, 200.0];
/// Leaves of the classifier (margins; never summing to 0).
const CLF: [f64; 6] = [1.5, -0.75, -1.0, 0.5, 0.125, 0.0];

impl Typed {
    fn leaves(self) -> [f64; 6] {
        match self {
            Typed::Regressor => REG,
            Typed::Classifier => CLF,
        }
    }

    /// The margin for a row given as the original values (`None` = missing).
    pub fn margin(self, city: Option<&str>, x: Option<f64>, store: Option<f64>) -> f64 {
        let l = self.leaves();
        let c = if city == Some(CITIES[1]) { l[0] } else { l[1] };
        let xv = match x {
            Some(v) if !v.is_nan() && v >= 0.5 => l[3],
            _ => l[2],
        };
        let s = if store == Some(STORES[3] as f64) {
            l[4]
        } else {
            l[5]
        };
        c + xv + s
    }

    /// The classifier's probability of `yes` for a margin.
    pub fn p(m: f64) -> f64 {
        1.0 / (1.0 + (-m).exp())
    }

    /// The classifier's label for a margin.
    pub fn label(m: f64) -> &'static str {
        if Self::p(m) > 0.5 {
            CLASSES[1]
        } else {
            CLASSES[0]
        }
    }

    /// Node covers of [`Typed::bytes_with_covers`]: per tree (root, left leaf, right leaf).
    pub const COVERS: [[f64; 3]; 3] = [[10.0, 3.0, 7.0], [10.0, 6.0, 4.0], [10.0, 2.0, 8.0]];

    /// The exact contributions (docs/OPS.md, "Explanations") of a row given as the original
    /// values, for [`Typed::bytes_with_covers`]: `[city, x, store, bias]`. Each tree is a stump
    /// on one feature, so that feature's contribution is the leaf the row reaches minus the
    /// tree's cover-weighted mean, and the bias is the sum of the means.
    pub fn contributions(self, city: Option<&str>, x: Option<f64>, store: Option<f64>) -> [f64; 4] {
        let l = self.leaves();
        let mean = |k: usize| {
            let c = Self::COVERS[k];
            (c[1] * l[2 * k] + c[2] * l[2 * k + 1]) / c[0]
        };
        let city_in = city == Some(CITIES[1]);
        let x_lo = !matches!(x, Some(v) if !v.is_nan() && v >= 0.5);
        let store_in = store == Some(STORES[3] as f64);
        let pick = |k: usize, first: bool| if first { l[2 * k] } else { l[2 * k + 1] };
        [
            pick(0, city_in) - mean(0),
            pick(1, x_lo) - mean(1),
            pick(2, store_in) - mean(2),
            mean(0) + mean(1) + mean(2),
        ]
    }

    /// The model's bytes; `unknown` is the Lookups' rule (`missing` or `error`).
    pub fn bytes(self, unknown: &str) -> Vec<u8> {
        self.build(unknown, false)
    }

    /// [`Typed::bytes`] with node covers ([`Typed::COVERS`]), so that it can be explained.
    pub fn bytes_with_covers(self, unknown: &str) -> Vec<u8> {
        self.build(unknown, true)
    }

    fn build(self, unknown: &str, covers: bool) -> Vec<u8> {
        let (task, outputs): (Task, &[(&str, DType)]) = match self {
            Typed::Regressor => (Task::Regression, &[("prediction", DType::F64)]),
            Typed::Classifier => (
                Task::Binary,
                &[("label", DType::I64), ("probabilities", DType::F64)],
            ),
        };
        let mut meta = Metadata::new(
            "test",
            "TypedTrees",
            task,
            FEATURES.iter().map(|s| s.to_string()).collect(),
            DType::F64,
            outputs,
        );
        if self == Typed::Classifier {
            meta.output.class_labels = Some(ClassLabels::Str(
                CLASSES.iter().map(|s| s.to_string()).collect(),
            ));
        }
        let mut b = ModelBuilder::new(meta);
        let city = b
            .add_vocabulary("vocab.city", &CITIES)
            .expect("the vocabulary is valid");
        let store = b
            .add_integer_vocabulary("vocab.store", &STORES)
            .expect("the vocabulary is valid");
        b.set_input_features(vec![
            FeatureSpec::category("city", city),
            FeatureSpec::new("x", FeatureKind::Float),
            FeatureSpec::category("store", store),
        ])
        .expect("the schema is valid");
        b.set_inputs(vec![vi("X", DType::F64, &[-1, 3])]);
        b.push_node(
            Node::new("lookup_city", "Lookup", &["X"], &["X1"])
                .with("feature", Attr::Int(0))
                .with("bytes", Attr::Tensor("vocab.city.bytes".into()))
                .with("offsets", Attr::Tensor("vocab.city.offsets".into()))
                .with("unknown", Attr::Str(unknown.into())),
        );
        b.push_node(
            Node::new("lookup_store", "Lookup", &["X1"], &["X2"])
                .with("feature", Attr::Int(2))
                .with("values", Attr::Tensor("vocab.store".into()))
                .with("unknown", Attr::Str(unknown.into())),
        );
        let l = self.leaves();
        let mut s = TreeEnsembleSpec::new(1, 1, Comparison::Lt, Precision::F64);
        let r = s.categorical_split(0, &[0b10], 1, 2, 0);
        s.leaf(&[l[0]]);
        s.leaf(&[l[1]]);
        s.push_tree(r, 0, 1.0);
        let r = s.n_nodes() as u32;
        s.split(1, 0.5, r + 1, r + 2, flags::MISSING_LEFT);
        s.leaf(&[l[2]]);
        s.leaf(&[l[3]]);
        s.push_tree(r, 0, 1.0);
        let r = s.n_nodes() as u32;
        s.categorical_split(2, &[0b1000], r + 1, r + 2, 0);
        s.leaf(&[l[4]]);
        s.leaf(&[l[5]]);
        s.push_tree(r, 0, 1.0);
        let ann = TreeAnnotations {
            node_cover: covers.then(|| Self::COVERS.iter().flatten().copied().collect()),
            leaf_ids: None,
        };
        match self {
            Typed::Regressor => {
                s.write_annotated(&ann, &mut b, "trees", "X2", "prediction")
                    .expect("the trees are valid");
                b.set_outputs(vec![vi("prediction", DType::F64, &[-1, 1])]);
            }
            Typed::Classifier => {
                s.write_annotated(&ann, &mut b, "trees", "X2", "margin")
                    .expect("the trees are valid");
                b.push_node(Node::new("sigmoid", "Sigmoid", &["margin"], &["p"]));
                b.push_node(Node::new(
                    "to_proba",
                    "BinaryToProba",
                    &["p"],
                    &["probabilities"],
                ));
                b.push_node(
                    Node::new("threshold", "Threshold", &["p"], &["label"])
                        .with("threshold", Attr::Float(0.5)),
                );
                b.set_outputs(vec![
                    vi("label", DType::I64, &[-1]),
                    vi("probabilities", DType::F64, &[-1, 2]),
                ]);
            }
        }
        b.to_bytes(&WriteOptions::default())
            .expect("the model is written")
    }
}

fn vi(name: &str, dtype: DType, shape: &[i64]) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        dtype,
        shape: shape.to_vec(),
    }
}
