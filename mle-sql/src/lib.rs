//! # mle-sql
//!
//! DataFusion scalar UDFs and a table function that run `.mle` models inside SQL:
//!
//! ```sql
//! SELECT mle_predict('models/cancer.mle', mean_radius, mean_texture, ...) AS label,
//!        mle_predict_proba('models/cancer.mle', mean_radius, mean_texture, ...) AS proba
//! FROM patients;
//! -- the table's columns plus prediction (and probabilities), bound by name:
//! SELECT * FROM mle_score('models/cancer.mle', 'patients');
//! ```
//!
//! - The first argument is the model path, a string literal (relative paths resolve against
//!   the working directory). The model is opened while the query is planned, so a missing or
//!   corrupt file, a wrong number of feature arguments (the error lists the model's features)
//!   or a non-numeric argument fails the query before it runs.
//! - Feature arguments bind by position and are checked against each feature's kind
//!   (`mle-arrow`'s input policy, the same in every front end): integer, unsigned, float,
//!   decimal and boolean (false = 0, true = 1) arguments for numeric features; `Utf8`,
//!   `LargeUtf8`, `Utf8View` and dictionary string arguments for string and category features
//!   (numbers are taken as category codes); NULL is a missing value.
//! - [`table::MleScore`] (`mle_score('model.mle', 'table')`) binds a registered table's columns
//!   by name and streams it through the model (see [`table`]).
//! - `mle_predict` returns a number for regressors (`Float32` or `Float64`, the model's own
//!   output type) and the class label for classifiers (`Int64` or `Utf8`);
//!   `mle_predict_proba` returns the probabilities as `FixedSizeList<Float64>` (`mle-arrow`'s
//!   output contract).
//! - `mle_explain('model.mle', c1, ...)` returns each row's feature contributions (exact
//!   path-dependent TreeSHAP of the tree ensemble's raw output) as a struct with one
//!   `Float64` field per feature, named as the feature, and `bias` (for a multiclass model
//!   each field is a `FixedSizeList<Float64>` per class); `mle_predict_leaf('model.mle', c1,
//!   ...)` the leaf reached in each tree as `FixedSizeList<Int32, n_trees>`. A model that
//!   cannot be explained (not a tree model, no node covers) fails the query at plan time,
//!   naming why.
//! - Compiled models live in `mle-arrow`'s process-wide cache ([`ModelCache::global`], shared
//!   with every front end in the process) keyed by canonical path and trust policy, with the
//!   file's identity (device, inode, modification time, size) re-checked on every lookup; a
//!   replaced file is reloaded by the next query. Only regular files are opened: a FIFO, a
//!   directory or a device fails the query with an error naming the path.
//! - Each call runs on DataFusion's partition thread with a one-thread executor (no
//!   oversubscription); partitions provide the parallelism.
//!
//! ```no_run
//! # async fn f() -> datafusion::common::Result<()> {
//! use datafusion::prelude::*;
//! let ctx = SessionContext::new();
//! mle_sql::register(&ctx);
//! ctx.register_parquet("t", "data.parquet", ParquetReadOptions::default()).await?;
//! ctx.sql("SELECT mle_predict('model.mle', a, b) FROM t").await?.show().await?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod error;
pub mod table;
pub mod udf;

use std::sync::Arc;

pub use error::SqlError;
pub use mle_arrow::cache::{CachedModel, ModelCache};
pub use table::MleScore;
pub use udf::{MlePredict, Returns, UdfOptions};

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use mle_format::PublicKey;

/// The UDFs (`mle_predict`, `mle_predict_proba`, `mle_explain`, `mle_predict_leaf`)
/// configured with `opts`.
pub fn udfs(opts: UdfOptions) -> [ScalarUDF; 4] {
    [
        ScalarUDF::new_from_impl(MlePredict::predict(opts)),
        ScalarUDF::new_from_impl(MlePredict::predict_proba(opts)),
        ScalarUDF::new_from_impl(MlePredict::explain(opts)),
        ScalarUDF::new_from_impl(MlePredict::predict_leaf(opts)),
    ]
}

/// Registers `mle_predict`, `mle_predict_proba` and the table function `mle_score` on `ctx`
/// (any model file accepted).
pub fn register(ctx: &SessionContext) {
    register_with(ctx, UdfOptions::default());
}

/// Registers the UDFs and `mle_score` requiring every model to be signed by `public_key`
/// (when given).
pub fn register_trusted(ctx: &SessionContext, public_key: Option<PublicKey>) {
    register_with(
        ctx,
        UdfOptions {
            public_key,
            ..UdfOptions::default()
        },
    );
}

/// Registers the UDFs and the table function with explicit options.
pub fn register_with(ctx: &SessionContext, opts: UdfOptions) {
    for udf in udfs(opts) {
        ctx.register_udf(udf);
    }
    ctx.register_udtf(table::NAME, Arc::new(MleScore::new(opts)));
}
