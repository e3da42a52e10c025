//! The `mle_predict`, `mle_predict_proba`, `mle_explain` and `mle_predict_leaf` scalar UDFs.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, StructArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields};
use datafusion::common::{exec_datafusion_err, plan_datafusion_err, DataFusionError, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use mle_arrow::cache::{CachedModel, ModelCache};
use mle_arrow::{
    apply_arrays, check_column, explain_arrays, explain_type, leaf_type, predict_arrays, Features,
    OutputKind,
};
use mle_exec::RunOptions;
use mle_format::PublicKey;

use crate::error::{chain, SqlError};

/// Options shared by the UDFs of one registration.
#[derive(Debug, Clone, Copy)]
pub struct UdfOptions {
    /// When set, a model must carry a valid signature by this key.
    pub public_key: Option<PublicKey>,
    /// Executor threads per call. The default, 1, lets DataFusion's partitions provide the
    /// parallelism without oversubscribing the cores.
    pub threads: usize,
}

impl Default for UdfOptions {
    fn default() -> Self {
        UdfOptions {
            public_key: None,
            threads: 1,
        }
    }
}

/// What a call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Returns {
    /// The prediction (`mle_predict`).
    Prediction,
    /// The class probabilities (`mle_predict_proba`).
    Probabilities,
    /// Every output as a struct: `prediction`, and `probabilities` for classifiers that have
    /// them (the table function `mle_score` reads its columns from it, so the model runs once
    /// per row).
    Outputs,
    /// The per-row feature contributions (`mle_explain`): a struct with one field per feature
    /// and `bias` (`mle-arrow`'s explanation contract).
    Explain,
    /// The leaf reached in each tree (`mle_predict_leaf`): `FixedSizeList<Int32, n_trees>`.
    Leaves,
}

/// `mle_predict(path, c1, c2, ...)` (the prediction: a number for regressors, the class label
/// for classifiers) or `mle_predict_proba(path, c1, ...)` (the class probabilities as a
/// fixed-size list).
#[derive(Debug)]
pub struct MlePredict {
    name: &'static str,
    returns: Returns,
    signature: Signature,
    opts: UdfOptions,
    cache: &'static ModelCache,
    /// The model this call was bound to when its query was planned (see `simplify`).
    pinned: Option<Arc<CachedModel>>,
}

impl PartialEq for MlePredict {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.returns == other.returns
            && self.opts.threads == other.opts.threads
            && self.opts.public_key.map(|k| k.to_bytes())
                == other.opts.public_key.map(|k| k.to_bytes())
            && std::ptr::eq(self.cache, other.cache)
            && match (&self.pinned, &other.pinned) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl Eq for MlePredict {}

impl Hash for MlePredict {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
        self.returns.hash(state);
        self.opts.threads.hash(state);
        self.opts.public_key.map(|k| k.to_bytes()).hash(state);
        self.pinned
            .as_ref()
            .map(|p| Arc::as_ptr(p) as usize)
            .hash(state);
    }
}

impl MlePredict {
    /// `mle_predict` with the given options, using the process-wide model cache.
    pub fn predict(opts: UdfOptions) -> Self {
        Self::new(
            "mle_predict",
            Returns::Prediction,
            opts,
            ModelCache::global(),
        )
    }

    /// `mle_predict_proba` with the given options, using the process-wide model cache.
    pub fn predict_proba(opts: UdfOptions) -> Self {
        Self::new(
            "mle_predict_proba",
            Returns::Probabilities,
            opts,
            ModelCache::global(),
        )
    }

    /// `mle_explain` with the given options, using the process-wide model cache.
    pub fn explain(opts: UdfOptions) -> Self {
        Self::new("mle_explain", Returns::Explain, opts, ModelCache::global())
    }

    /// `mle_predict_leaf` with the given options, using the process-wide model cache.
    pub fn predict_leaf(opts: UdfOptions) -> Self {
        Self::new(
            "mle_predict_leaf",
            Returns::Leaves,
            opts,
            ModelCache::global(),
        )
    }

    /// A UDF using its own cache (tests).
    pub fn new(
        name: &'static str,
        returns: Returns,
        opts: UdfOptions,
        cache: &'static ModelCache,
    ) -> Self {
        MlePredict {
            name,
            returns,
            // Any argument types reach `return_field_from_args`, which knows the model and so
            // can name the feature an unusable argument was meant for.
            signature: Signature::user_defined(Volatility::Stable),
            opts,
            cache,
            pinned: None,
        }
    }

    fn usage(&self) -> String {
        format!("{}('model.mle', feature1, feature2, ...)", self.name)
    }

    pub(crate) fn model(&self, path: &str) -> Result<(Arc<CachedModel>, OutputKind), String> {
        let cached = match &self.pinned {
            Some(p) => p.clone(),
            None => self
                .cache
                .get(Path::new(path), self.opts.public_key.as_ref())
                .map_err(|e| chain(&SqlError::from(e)))?,
        };
        let kind = cached.output_kind().map_err(|source| {
            chain(&SqlError::Outputs {
                path: path.to_string(),
                source,
            })
        })?;
        Ok((cached, kind))
    }

    /// The type this UDF returns for a model.
    fn return_type_of(
        &self,
        path: &str,
        cached: &CachedModel,
        kind: &OutputKind,
    ) -> Result<DataType, String> {
        if matches!(self.returns, Returns::Explain | Returns::Leaves) {
            let model = cached.model();
            let info = if self.returns == Returns::Explain {
                model.explain_info()
            } else {
                model.apply_info()
            }
            .map_err(|e| format!("{}: {e}", self.name))?;
            let t = if self.returns == Returns::Explain {
                explain_type(&info)
            } else {
                leaf_type(&info)
            };
            return t.map_err(|e| format!("{}: model {path:?}: {e}", self.name));
        }
        if self.returns == Returns::Outputs {
            return Ok(DataType::Struct(Fields::from(kind.fields())));
        }
        if self.returns == Returns::Probabilities {
            kind.probabilities_type().ok_or_else(|| {
                if kind.is_classifier() {
                    format!(
                        "{}: classifier {path:?} was exported without class probabilities (use mle_predict)",
                        self.name
                    )
                } else {
                    format!(
                        "{}: model {path:?} is not a classifier, so it has no class probabilities (use mle_predict)",
                        self.name
                    )
                }
            })
        } else {
            Ok(kind.prediction_type())
        }
    }
}

/// The model path from a literal argument.
fn literal_path(v: &ScalarValue) -> Option<&str> {
    match v {
        ScalarValue::Utf8(Some(s))
        | ScalarValue::LargeUtf8(Some(s))
        | ScalarValue::Utf8View(Some(s)) => Some(s),
        _ => None,
    }
}

impl ScalarUDFImpl for MlePredict {
    /// `mle_predict` or `mle_predict_proba`.
    fn name(&self) -> &str {
        self.name
    }

    /// User-defined: every argument list is accepted here and checked against the model in
    /// `return_field_from_args`.
    fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Leaves argument types unchanged: feature columns are converted by `mle-arrow`, which
    /// borrows float columns without a copy.
    fn coerce_types(&self, arg_types: &[DataType]) -> datafusion::common::Result<Vec<DataType>> {
        Ok(arg_types.to_vec())
    }

    /// Not used: the return type depends on the model, see `return_field_from_args`.
    fn return_type(&self, _arg_types: &[DataType]) -> datafusion::common::Result<DataType> {
        Err(DataFusionError::Internal(format!(
            "{}: return_type called instead of return_field_from_args",
            self.name
        )))
    }

    /// Opens the model named by the literal first argument (through the cache) and checks the
    /// feature arguments against it: their number and their types. The result type is the
    /// model's prediction or probabilities type.
    fn return_field_from_args(
        &self,
        args: ReturnFieldArgs,
    ) -> datafusion::common::Result<FieldRef> {
        let name = self.name;
        let Some(first) = args.arg_fields.first() else {
            return Err(plan_datafusion_err!(
                "{name}: missing the model path; call it as {}",
                self.usage()
            ));
        };
        let path = match args.scalar_arguments.first().copied().flatten() {
            Some(v) => literal_path(v).ok_or_else(|| {
                plan_datafusion_err!(
                    "{name}: the first argument must be the model path as a string literal, found {} {v}",
                    v.data_type()
                )
            })?,
            None => {
                return Err(plan_datafusion_err!(
                    "{name}: the first argument must be the model path as a string literal, not an expression or column (found {} of type {}); call it as {}",
                    first.name(),
                    first.data_type(),
                    self.usage()
                ))
            }
        };
        let (cached, kind) = self
            .model(path)
            .map_err(|e| plan_datafusion_err!("{name}: {e}"))?;
        let features = Features::of(cached.model().metadata());
        let given = args.arg_fields.len() - 1;
        if given != features.len() {
            return Err(plan_datafusion_err!(
                "{name}: model {path:?} takes {} feature arguments after the path, but {given} {} given; its features are: {}",
                features.len(),
                if given == 1 { "was" } else { "were" },
                features.names().join(", ")
            ));
        }
        // The one input policy (mle-arrow's), checked per argument against its feature's kind.
        for (i, (field, feature)) in args.arg_fields[1..].iter().zip(features.iter()).enumerate() {
            if check_column(field.name(), feature, field.data_type()).is_err() {
                return Err(plan_datafusion_err!(
                    "{name}: argument {} ({}) for feature {:?} of model {path:?} has type {}, which is {}; a {} feature takes {} (NULL is a missing value)",
                    i + 2,
                    field.name(),
                    feature.name,
                    field.data_type(),
                    feature.problem(mle_arrow::column_class(field.data_type())),
                    feature.kind_label(),
                    feature.accepted()
                ));
            }
        }
        let dt = self
            .return_type_of(path, &cached, &kind)
            .map_err(|e| plan_datafusion_err!("{e}"))?;
        Ok(Arc::new(Field::new(name, dt, false)))
    }

    /// Binds the call to the model its path names now, once per query: every batch of the query
    /// is then scored by that one model, even if the file is replaced while the query runs
    /// (the replacement is picked up by the next query).
    fn simplify(
        &self,
        args: Vec<Expr>,
        _info: &SimplifyContext,
    ) -> datafusion::common::Result<ExprSimplifyResult> {
        if self.pinned.is_some() {
            return Ok(ExprSimplifyResult::Original(args));
        }
        let Some(path) = (match args.first() {
            Some(Expr::Literal(v, _)) => literal_path(v),
            _ => None,
        }) else {
            return Ok(ExprSimplifyResult::Original(args));
        };
        let (cached, _) = self
            .model(path)
            .map_err(|e| plan_datafusion_err!("{}: {e}", self.name))?;
        let pinned = MlePredict {
            name: self.name,
            returns: self.returns,
            signature: self.signature.clone(),
            opts: self.opts,
            cache: self.cache,
            pinned: Some(cached),
        };
        let udf = Arc::new(ScalarUDF::new_from_impl(pinned));
        Ok(ExprSimplifyResult::Simplified(Expr::ScalarFunction(
            ScalarFunction::new_udf(udf, args),
        )))
    }

    /// Runs the model over one batch: features are bound by position, NULL becomes a missing
    /// value, and the executor runs on this partition's thread.
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion::common::Result<ColumnarValue> {
        let name = self.name;
        let path = match args.args.first() {
            Some(ColumnarValue::Scalar(v)) => literal_path(v),
            _ => None,
        }
        .ok_or_else(|| exec_datafusion_err!("{name}: the model path must be a string literal"))?;
        let (cached, kind) = self
            .model(path)
            .map_err(|e| exec_datafusion_err!("{name}: {e}"))?;
        let dt = self
            .return_type_of(path, &cached, &kind)
            .map_err(|e| exec_datafusion_err!("{e}"))?;
        if &dt != args.return_type() {
            return Err(exec_datafusion_err!(
                "{name}: model {path:?} changed while the query ran: it now returns {dt}, the query was planned for {}; run the query again",
                args.return_type()
            ));
        }
        let n = args.number_rows;
        let features = args.args.get(1..).unwrap_or(&[]);
        // A literal next to columns crosses as one row, which mle-arrow broadcasts without a
        // copy (a string literal is not repeated `n` times). With only literals, or with 0 or
        // 1 rows, each literal is expanded to the batch's rows so that the output has `n`.
        let any_array = features
            .iter()
            .any(|c| matches!(c, ColumnarValue::Array(_)));
        let literal_rows = if any_array && n > 1 { 1 } else { n };
        let columns = features
            .iter()
            .map(|c| match c {
                ColumnarValue::Array(a) => Ok(a.clone()),
                ColumnarValue::Scalar(s) => s.to_array_of_size(literal_rows),
            })
            .collect::<datafusion::common::Result<Vec<ArrayRef>>>()?;
        let names: Vec<String> = args
            .arg_fields
            .get(1..)
            .unwrap_or(&[])
            .iter()
            .map(|f| f.name().to_string())
            .collect();
        let opts = RunOptions {
            threads: self.opts.threads,
        };
        let fail = |e: mle_arrow::ArrowError| {
            exec_datafusion_err!("{name}: model {path:?}: {}", chain(&e))
        };
        match self.returns {
            Returns::Explain => {
                let a = cached
                    .with_session(|s| explain_arrays(s, &columns, &names, opts))
                    .map_err(fail)?;
                return Ok(ColumnarValue::Array(a));
            }
            Returns::Leaves => {
                let a = cached
                    .with_session(|s| apply_arrays(s, &columns, &names, opts))
                    .map_err(fail)?;
                return Ok(ColumnarValue::Array(a));
            }
            _ => {}
        }
        let out = cached
            .with_session(|s| predict_arrays(s, &kind, &columns, &names, opts))
            .map_err(fail)?;
        let array = match self.returns {
            Returns::Probabilities => out.probabilities.ok_or_else(|| {
                DataFusionError::Internal(format!("{name}: classifier without probabilities"))
            })?,
            Returns::Prediction | Returns::Explain | Returns::Leaves => out.prediction,
            Returns::Outputs => {
                let mut columns = vec![out.prediction];
                columns.extend(out.probabilities);
                let DataType::Struct(fields) = dt else {
                    return Err(DataFusionError::Internal(format!(
                        "{name}: the outputs are not a struct"
                    )));
                };
                Arc::new(StructArray::try_new(fields, columns, None)?) as ArrayRef
            }
        };
        Ok(ColumnarValue::Array(array))
    }
}
