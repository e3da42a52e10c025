//! `Gather`: a selection of columns (scikit-learn's `ColumnTransformer` column lists).

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};
use crate::plan::MAX_WIDTH;

/// `Gather`: output column `j` is input column `columns[j]` of an `[N, F]` input (any dtype).
pub(super) fn lower_gather(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    let x = ctx.ins[0];
    let dims = c.values[x].dims.clone();
    if dims.len() != 1 {
        return Err(ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]")));
    }
    let f = dims[0];
    let cols = ctx
        .ints("columns")?
        .ok_or_else(|| ctx.bad("required attribute `columns` is missing"))?;
    if cols.len() > MAX_WIDTH {
        return Err(ctx.bad(format!(
            "`columns` has {} entries, more than {MAX_WIDTH}",
            cols.len()
        )));
    }
    let columns = super::columns_of(ctx, "columns", cols, f)?;
    let dt = c.values[x].dtype;
    let w = columns.len();
    let o = c.new_value(ctx.out, dt, vec![w], w);
    c.push(ctx.node, Kernel::Gather { columns }, vec![x], o);
    Ok(o)
}
