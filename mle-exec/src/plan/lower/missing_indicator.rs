//! `MissingIndicator`: 1 where a column is missing, else 0 (scikit-learn's
//! `MissingIndicator` and `add_indicator=True`).

use mle_format::DType;

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};

/// `MissingIndicator`: output column `j` is 1 where input column `columns[j]` is NaN (or
/// equal to `missing`), else 0.
pub(super) fn lower_missing_indicator(
    c: &mut Compiler<'_>,
    ctx: &Ctx<'_>,
) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let x = c.coerce(ctx.ins[0], DType::F64);
    let dims = c.values[x].dims.clone();
    if dims.len() != 1 {
        return Err(ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]")));
    }
    let cols = ctx
        .ints("columns")?
        .ok_or_else(|| ctx.bad("required attribute `columns` is missing"))?;
    let columns = super::columns_of(ctx, "columns", cols, dims[0])?;
    let missing = ctx.float("missing")?.unwrap_or(f64::NAN);
    let w = columns.len();
    let o = c.new_value(ctx.out, DType::F64, vec![w], w);
    c.push(
        ctx.node,
        Kernel::MissingIndicator { columns, missing },
        vec![x],
        o,
    );
    Ok(o)
}
