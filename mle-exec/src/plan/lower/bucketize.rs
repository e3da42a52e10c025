//! `Bucketize`: values → bin indices (scikit-learn's `KBinsDiscretizer`).

use mle_format::DType;

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};

/// `Bucketize`: `y[f]` is the number of the feature's edges `≤ x[f]`
/// (`numpy.searchsorted(edges, x, side="right")`); NaN stays NaN.
pub(super) fn lower_bucketize(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let x = c.coerce(ctx.ins[0], DType::F64);
    let dims = c.values[x].dims.clone();
    if dims.len() != 1 {
        return Err(ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]")));
    }
    let f = dims[0];
    let (edges, _) = ctx
        .tensor_f64(c.file, "edges")?
        .ok_or_else(|| ctx.bad("required attribute `edges` is missing"))?;
    let name = ctx
        .tensor_name("edge_offsets")?
        .ok_or_else(|| ctx.bad("required attribute `edge_offsets` is missing"))?;
    let raw = super::lookup::vector::<u32>(c, ctx, "edge_offsets", name, DType::U32)?;
    let offsets = super::offsets_of(ctx, "edge_offsets", raw, f, edges.len())?;
    for k in 0..f {
        let e = &edges[offsets[k]..offsets[k + 1]];
        if e.iter().any(|v| v.is_nan()) || e.windows(2).any(|p| p[0] > p[1]) {
            return Err(ctx.bad(format!(
                "the edges of feature {k} are not sorted ascending (or hold NaN)"
            )));
        }
    }
    c.table_bytes = c.table_bytes.saturating_add(edges.len() * 8);
    let o = c.new_value(ctx.out, DType::F64, vec![f], f);
    c.push(ctx.node, Kernel::Bucketize { edges, offsets }, vec![x], o);
    Ok(o)
}
