//! The table function `mle_score('model.mle', 'table')`: the table's columns plus the model's
//! outputs, its columns bound to the model's features **by name** (in the spirit of BigQuery's
//! `ML.PREDICT(MODEL m, TABLE t)`).
//!
//! ```sql
//! SELECT * FROM mle_score('models/churn.mle', 'customers') WHERE prediction = 'yes'
//! ```
//!
//! - The result has every column of the table, then `prediction` (a number for regressors,
//!   the class label for classifiers) and, for classifiers with probabilities,
//!   `probabilities` (`FixedSizeList<Float64>`): `mle-arrow`'s output contract.
//! - Planned, not run, when the query is planned: the model is opened through the shared
//!   cache, the table looked up in the session's catalog, and every feature found among its
//!   columns by name and checked against its kind (`mle-arrow`'s input policy), so a missing
//!   feature (all of them named), a column of the wrong kind or a table that already has a
//!   `prediction` column fails the query before it reads anything.
//! - It streams: the result is a view over the table (`SELECT t.*, outputs FROM t`), so
//!   DataFusion scans the table batch by batch, in partitions, and the model runs once per
//!   batch on each partition's thread through the `mle_predict` machinery (one call gives
//!   every output as a struct, so a classifier runs once per row for both columns).

use std::sync::Arc;

use datafusion::arrow::array::{Array, StructArray};
use datafusion::arrow::datatypes::{DataType, FieldRef};
use datafusion::catalog::{Session, TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{
    exec_datafusion_err, plan_datafusion_err, Column, DataFusionError, Result, ScalarValue,
    TableReference,
};
use datafusion::datasource::{provider_as_source, ViewTable};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlanBuilder, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use mle_arrow::cache::ModelCache;
use mle_arrow::Features;

use crate::udf::{MlePredict, Returns, UdfOptions};

/// Name of the table function.
pub const NAME: &str = "mle_score";
/// The internal column holding the outputs struct.
const OUTPUTS: &str = "__mle_score_outputs";

/// `mle_score('model.mle', 'table')` (see the module docs).
#[derive(Debug)]
pub struct MleScore {
    opts: UdfOptions,
    cache: &'static ModelCache,
}

impl MleScore {
    /// The table function with these options, using the process-wide model cache.
    pub fn new(opts: UdfOptions) -> Self {
        Self::with_cache(opts, ModelCache::global())
    }

    /// The table function using its own cache (tests).
    pub fn with_cache(opts: UdfOptions, cache: &'static ModelCache) -> Self {
        MleScore { opts, cache }
    }
}

fn usage() -> String {
    format!("{NAME}('model.mle', 'table_name')")
}

/// A string literal argument.
fn literal<'e>(args: &'e [Expr], i: usize, what: &str) -> Result<&'e str> {
    match args.get(i) {
        Some(Expr::Literal(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
            _,
        )) => Ok(s),
        Some(other) => Err(plan_datafusion_err!(
            "{NAME}: argument {} must be the {what} as a string literal, found {other}; call it as {}",
            i + 1,
            usage()
        )),
        None => Err(plan_datafusion_err!(
            "{NAME}: missing the {what}; call it as {}",
            usage()
        )),
    }
}

/// The table `name` names in the session's catalog.
fn find_table(session: &dyn Session, name: &str) -> Result<Arc<dyn TableProvider>> {
    let reference = TableReference::from(name);
    let options = session.config().options();
    let resolved = reference.resolve(
        &options.catalog.default_catalog,
        &options.catalog.default_schema,
    );
    let not_found = || plan_datafusion_err!("{NAME}: no table {name:?} is registered");
    let schema = session
        .catalog_list()
        .catalog(&resolved.catalog)
        .and_then(|c| c.schema(&resolved.schema))
        .ok_or_else(not_found)?;
    // A schema provider looks tables up asynchronously; the in-memory catalog (tables
    // registered on the context) answers at once, so this does not wait on anything.
    futures::executor::block_on(schema.table(&resolved.table))?.ok_or_else(not_found)
}

impl TableFunctionImpl for MleScore {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let exprs = args.exprs();
        if exprs.len() != 2 {
            return Err(plan_datafusion_err!(
                "{NAME} takes 2 arguments, the model path and the table name, but {} {} given; call it as {}",
                exprs.len(),
                if exprs.len() == 1 { "was" } else { "were" },
                usage()
            ));
        }
        let path = literal(exprs, 0, "model path")?;
        let table = literal(exprs, 1, "table name")?;
        let udf = MlePredict::new(NAME, Returns::Outputs, self.opts, self.cache);
        let (cached, kind) = udf
            .model(path)
            .map_err(|e| plan_datafusion_err!("{NAME}: {e}"))?;
        let provider = find_table(args.session(), table)?;
        let schema = provider.schema();
        let features = Features::of(cached.model().metadata());
        let idx = features
            .columns_by_name(&schema)
            .map_err(|e| plan_datafusion_err!("{NAME}: table {table:?} for model {path:?}: {e}"))?;
        let out_fields = kind.fields();
        for f in &out_fields {
            if schema.index_of(f.name()).is_ok() || f.name() == OUTPUTS {
                return Err(plan_datafusion_err!(
                    "{NAME}: table {table:?} already has a column named {:?}, which {NAME} adds; select the table's columns under other names first",
                    f.name()
                ));
            }
        }
        let reference = TableReference::from(table);
        let column = |name: &str| Expr::Column(Column::new(Some(reference.clone()), name));
        let columns: Vec<Expr> = schema.fields().iter().map(|f| column(f.name())).collect();
        let mut call_args = vec![Expr::Literal(
            ScalarValue::Utf8(Some(path.to_string())),
            None,
        )];
        call_args.extend(idx.iter().map(|&i| column(schema.field(i).name())));
        let call = Expr::ScalarFunction(ScalarFunction::new_udf(
            Arc::new(ScalarUDF::new_from_impl(udf)),
            call_args,
        ));
        let mut outputs = columns.clone();
        outputs.extend(out_fields.iter().map(|f| {
            let field = Arc::new(ScalarUDF::new_from_impl(OutputField::new(f.name())));
            Expr::ScalarFunction(ScalarFunction::new_udf(
                field,
                vec![Expr::Column(Column::new_unqualified(OUTPUTS))],
            ))
            .alias(f.name())
        }));
        let plan = LogicalPlanBuilder::scan(reference.clone(), provider_as_source(provider), None)?
            .project(columns.into_iter().chain([call.alias(OUTPUTS)]))?
            .project(outputs)?
            .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}

/// One field of the outputs struct. Not `get_field`: DataFusion pushes `get_field` towards the
/// scan, which would copy the model call into every output column (running the model once
/// per column); a function of its own stays where it is, so the model runs once.
#[derive(Debug, PartialEq, Eq, Hash)]
struct OutputField {
    field: String,
    signature: Signature,
}

impl OutputField {
    fn new(field: &str) -> Self {
        OutputField {
            field: field.to_string(),
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    fn child(&self, dt: &DataType) -> Result<FieldRef> {
        match dt {
            DataType::Struct(fields) => fields
                .iter()
                .find(|f| f.name() == &self.field)
                .cloned()
                .ok_or_else(|| {
                    plan_datafusion_err!("{NAME}: the outputs have no {:?}", self.field)
                }),
            other => Err(plan_datafusion_err!(
                "{NAME}: the outputs are {other}, not a struct"
            )),
        }
    }
}

impl ScalarUDFImpl for OutputField {
    fn name(&self) -> &str {
        "mle_score_output"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        let dt = args
            .first()
            .ok_or_else(|| plan_datafusion_err!("{NAME}: no outputs struct"))?;
        Ok(self.child(dt)?.data_type().clone())
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let f = args
            .arg_fields
            .first()
            .ok_or_else(|| plan_datafusion_err!("{NAME}: no outputs struct"))?;
        self.child(f.data_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let Some(ColumnarValue::Array(a)) = args.args.first() else {
            return Err(exec_datafusion_err!("{NAME}: the outputs are not an array"));
        };
        let s = a
            .as_any()
            .downcast_ref::<StructArray>()
            .ok_or_else(|| DataFusionError::Internal(format!("{NAME}: outputs not a struct")))?;
        let c = s
            .column_by_name(&self.field)
            .ok_or_else(|| exec_datafusion_err!("{NAME}: the outputs have no {:?}", self.field))?;
        Ok(ColumnarValue::Array(c.clone()))
    }
}
