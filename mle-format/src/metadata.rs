//! The metadata section: a JSON document describing where the model came from and what
//! it takes and returns.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ir::DType;

/// What the model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One or more real-valued targets.
    Regression,
    /// Two classes.
    Binary,
    /// More than two classes.
    Multiclass,
    /// A relevance score per row (learning to rank).
    Ranking,
}

impl Task {
    /// True for binary and multiclass models.
    pub fn is_classifier(self) -> bool {
        matches!(self, Task::Binary | Task::Multiclass)
    }
}

/// Class labels of a classifier, in the order of the probability columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClassLabels {
    /// Integer labels (e.g. `[0, 1, 2]`).
    Int(Vec<i64>),
    /// String labels (e.g. `["setosa", "versicolor", "virginica"]`).
    Str(Vec<String>),
}

impl ClassLabels {
    /// Number of classes.
    pub fn len(&self) -> usize {
        match self {
            ClassLabels::Int(v) => v.len(),
            ClassLabels::Str(v) => v.len(),
        }
    }

    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The model's input: a matrix of features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputSchema {
    /// One name per feature column, in the order the model expects them.
    pub feature_names: Vec<String>,
    /// The dtype the source framework computes in (`f32` or `f64`); both are accepted.
    pub dtype: DType,
    /// Input shape, `-1` for the batch dimension (e.g. `[-1, 30]`).
    pub shape: Vec<i64>,
    /// Typed features, one per `feature_names` entry (format 1.1, see [`crate::schema`]);
    /// empty when absent: every feature is then a float.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<crate::schema::FeatureSpec>,
}

/// The model's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputSchema {
    /// Output names, matching the graph outputs (`prediction`, or `label` + `probabilities`).
    pub names: Vec<String>,
    /// One dtype per name.
    pub dtypes: Vec<DType>,
    /// Class labels for classifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_labels: Option<ClassLabels>,
}

/// The metadata section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Source framework: `sklearn`, `xgboost`, `lightgbm`, `pytorch`, ...
    pub framework: String,
    /// Version of the source framework, when known.
    #[serde(default)]
    pub framework_version: String,
    /// Model class or kind (e.g. `RandomForestClassifier`, `gbtree`).
    pub model_type: String,
    /// What the model predicts.
    pub task: Task,
    /// Input schema.
    pub input: InputSchema,
    /// Output schema.
    pub output: OutputSchema,
    /// Export time, RFC 3339 UTC.
    #[serde(default)]
    pub export_time: String,
    /// Version of the exporter that wrote the file.
    #[serde(default)]
    pub exporter_version: String,
    /// The user's own metadata (version, author, description, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user: BTreeMap<String, serde_json::Value>,
}

impl Metadata {
    /// Metadata of a model taking `feature_names` (all of one `dtype`, shape `[-1, F]`) and
    /// returning `outputs` (name, dtype); version fields and export time empty, no class labels
    /// and no user entries (set the fields afterwards for those).
    pub fn new(
        framework: impl Into<String>,
        model_type: impl Into<String>,
        task: Task,
        feature_names: Vec<String>,
        dtype: DType,
        outputs: &[(&str, DType)],
    ) -> Metadata {
        let n = feature_names.len() as i64;
        Metadata {
            framework: framework.into(),
            framework_version: String::new(),
            model_type: model_type.into(),
            task,
            input: InputSchema {
                feature_names,
                dtype,
                shape: vec![-1, n],
                features: Vec::new(),
            },
            output: OutputSchema {
                names: outputs
                    .iter()
                    .map(|(name, _)| (*name).to_string())
                    .collect(),
                dtypes: outputs.iter().map(|(_, dt)| *dt).collect(),
                class_labels: None,
            },
            export_time: String::new(),
            exporter_version: String::new(),
            user: BTreeMap::new(),
        }
    }

    /// The same metadata with class labels set (classifiers).
    pub fn with_class_labels(mut self, labels: ClassLabels) -> Metadata {
        self.output.class_labels = Some(labels);
        self
    }

    /// Number of input features.
    pub fn n_features(&self) -> usize {
        self.input.feature_names.len()
    }
}
