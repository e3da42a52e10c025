//! # mle-sql
//!
//! DataFusion scalar UDFs that run `.mle` models inside SQL:
//!
//! ```sql
//! SELECT mle_predict('models/cancer.mle', mean_radius, mean_texture, ...) AS label,
//!        mle_predict_proba('models/cancer.mle', mean_radius, mean_texture, ...) AS proba
//! FROM patients
//! ```
//!
//! - The first argument is the model path, a string literal (relative paths resolve against
//!   the working directory). The model is opened while the query is planned, so a missing or
//!   corrupt file, a wrong number of feature arguments (the error lists the model's features)
//!   or a non-numeric argument fails the query before it runs.
//! - Feature arguments bind by position; integer, unsigned, float, decimal and boolean
//!   arguments are accepted; NULL is a missing value.
//! - `mle_predict` returns a number for regressors (`Float32` or `Float64`, the model's own
//!   output type) and the class label for classifiers (`Int64` or `Utf8`);
//!   `mle_predict_proba` returns the probabilities as `FixedSizeList<Float32|Float64>`.
//! - Compiled models live in a process-wide cache ([`ModelCache::global`]) keyed by canonical
//!   path and file identity; a replaced file is reloaded by the next query.
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

pub mod cache;
pub mod error;
pub mod udf;

pub use cache::{CachedModel, ModelCache};
pub use error::SqlError;
pub use udf::{MlePredict, UdfOptions};

use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::SessionContext;
use mle_format::PublicKey;

/// The two UDFs configured with `opts`.
pub fn udfs(opts: UdfOptions) -> [ScalarUDF; 2] {
    [
        ScalarUDF::new_from_impl(MlePredict::predict(opts)),
        ScalarUDF::new_from_impl(MlePredict::predict_proba(opts)),
    ]
}

/// Registers `mle_predict` and `mle_predict_proba` on `ctx` (any model file accepted).
pub fn register(ctx: &SessionContext) {
    register_with(ctx, UdfOptions::default());
}

/// Registers the UDFs requiring every model to be signed by `public_key` (when given).
pub fn register_trusted(ctx: &SessionContext, public_key: Option<PublicKey>) {
    register_with(
        ctx,
        UdfOptions {
            public_key,
            ..UdfOptions::default()
        },
    );
}

/// Registers the UDFs with explicit options.
pub fn register_with(ctx: &SessionContext, opts: UdfOptions) {
    for udf in udfs(opts) {
        ctx.register_udf(udf);
    }
}
