//! `CategoryMap`: one column of codes → a row of values per code (scikit-learn's
//! `OrdinalEncoder` and `TargetEncoder`, HistGradientBoosting's own encoder after a
//! `ColumnTransformer`).

use mle_format::DType;

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};
use crate::plan::MAX_WIDTH;

/// `CategoryMap`: code `c` of input column `feature` → row `c` of `table[n, W]`; NaN → the
/// `missing` row, any other value (negative, fractional, `≥ n`) → the `unknown` row.
pub(super) fn lower_category_map(
    c: &mut Compiler<'_>,
    ctx: &Ctx<'_>,
) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let x = c.coerce(ctx.ins[0], DType::F64);
    let feature = super::feature_of(c, ctx, x)?;
    let (table, shape) = ctx
        .tensor_f64(c.file, "table")?
        .ok_or_else(|| ctx.bad("required attribute `table` is missing"))?;
    let width = match shape.as_slice() {
        [_, w] if *w <= MAX_WIDTH => *w,
        _ => {
            return Err(ctx.bad(format!(
                "`table` has shape {shape:?}, expected [n_codes, W] with W <= {MAX_WIDTH}"
            )))
        }
    };
    let row = |key: &str| -> Result<Vec<f64>, ExecError> {
        match ctx.tensor_f64(c.file, key)? {
            Some((v, _)) if v.len() == width => Ok(v),
            Some((v, s)) => Err(ctx.bad(format!(
                "`{key}` has shape {s:?} ({} values), expected [{width}]",
                v.len()
            ))),
            None => Err(ctx.bad(format!("required attribute `{key}` is missing"))),
        }
    };
    let missing = row("missing")?;
    let unknown = row("unknown")?;
    c.table_bytes = c.table_bytes.saturating_add(table.len() * 8);
    let o = c.new_value(ctx.out, DType::F64, vec![width], width);
    c.push(
        ctx.node,
        Kernel::CategoryMap {
            feature,
            width,
            table,
            missing,
            unknown,
        },
        vec![x],
        o,
    );
    Ok(o)
}
