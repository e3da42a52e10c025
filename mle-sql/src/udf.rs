//! The `mle_predict` and `mle_predict_proba` scalar UDFs.

use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{exec_datafusion_err, plan_datafusion_err, DataFusionError, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::{
    ColumnarValue, Expr, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    Volatility,
};
use mle_arrow::{is_supported_type, predict_arrays, OutputKind};
use mle_exec::RunOptions;
use mle_format::PublicKey;

use crate::cache::{CachedModel, ModelCache};
use crate::error::chain;

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

/// `mle_predict(path, c1, c2, ...)` (the prediction: a number for regressors, the class label
/// for classifiers) or `mle_predict_proba(path, c1, ...)` (the class probabilities as a
/// fixed-size list).
#[derive(Debug)]
pub struct MlePredict {
    name: &'static str,
    proba: bool,
    signature: Signature,
    opts: UdfOptions,
    cache: &'static ModelCache,
    /// The model this call was bound to when its query was planned (see `simplify`).
    pinned: Option<Arc<CachedModel>>,
}

impl PartialEq for MlePredict {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.proba == other.proba
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
        self.proba.hash(state);
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
        Self::new("mle_predict", false, opts, ModelCache::global())
    }

    /// `mle_predict_proba` with the given options, using the process-wide model cache.
    pub fn predict_proba(opts: UdfOptions) -> Self {
        Self::new("mle_predict_proba", true, opts, ModelCache::global())
    }

    /// A UDF using its own cache (tests).
    pub fn new(
        name: &'static str,
        proba: bool,
        opts: UdfOptions,
        cache: &'static ModelCache,
    ) -> Self {
        MlePredict {
            name,
            proba,
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

    fn model(&self, path: &str) -> Result<Arc<CachedModel>, String> {
        if let Some(p) = &self.pinned {
            return Ok(p.clone());
        }
        self.cache
            .get(Path::new(path), self.opts.public_key.as_ref())
            .map_err(|e| chain(&e))
    }

    /// The type this UDF returns for a model.
    fn return_type_of(&self, path: &str, kind: &OutputKind) -> Result<DataType, String> {
        if self.proba {
            kind.probabilities_type().ok_or_else(|| {
                format!(
                    "{}: model {path:?} is not a classifier, so it has no class probabilities (use mle_predict)",
                    self.name
                )
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
        let cached = self
            .model(path)
            .map_err(|e| plan_datafusion_err!("{name}: {e}"))?;
        let features = &cached.model.metadata().input.feature_names;
        let given = args.arg_fields.len() - 1;
        if given != features.len() {
            return Err(plan_datafusion_err!(
                "{name}: model {path:?} takes {} feature arguments after the path, but {given} {} given; its features are: {}",
                features.len(),
                if given == 1 { "was" } else { "were" },
                features.join(", ")
            ));
        }
        for (i, (field, feature)) in args.arg_fields[1..].iter().zip(features).enumerate() {
            if !is_supported_type(field.data_type()) {
                return Err(plan_datafusion_err!(
                    "{name}: argument {} ({}) for feature {feature:?} of model {path:?} has type {}, which is not numeric; integer, float, decimal and boolean arguments are accepted (NULL is a missing value)",
                    i + 2,
                    field.name(),
                    field.data_type()
                ));
            }
        }
        let dt = self
            .return_type_of(path, &cached.kind)
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
        let cached = self
            .model(path)
            .map_err(|e| plan_datafusion_err!("{}: {e}", self.name))?;
        let pinned = MlePredict {
            name: self.name,
            proba: self.proba,
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
        let cached = self
            .model(path)
            .map_err(|e| exec_datafusion_err!("{name}: {e}"))?;
        let dt = self
            .return_type_of(path, &cached.kind)
            .map_err(|e| exec_datafusion_err!("{e}"))?;
        if &dt != args.return_type() {
            return Err(exec_datafusion_err!(
                "{name}: model {path:?} changed while the query ran: it now returns {dt}, the query was planned for {}; run the query again",
                args.return_type()
            ));
        }
        let n = args.number_rows;
        let columns = args
            .args
            .get(1..)
            .unwrap_or(&[])
            .iter()
            .map(|c| c.to_array(n))
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
        let out = cached
            .with_session(|s| predict_arrays(s, &cached.kind, &columns, &names, opts))
            .map_err(|e| exec_datafusion_err!("{name}: model {path:?}: {}", chain(&e)))?;
        let array = if self.proba {
            out.probabilities.ok_or_else(|| {
                DataFusionError::Internal(format!("{name}: classifier without probabilities"))
            })?
        } else {
            out.prediction
        };
        Ok(ColumnarValue::Array(array))
    }
}
