//! `Polynomial`: products of columns (scikit-learn's `PolynomialFeatures`).

use mle_format::DType;

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};
use crate::plan::MAX_WIDTH;

/// `Polynomial`: output column `k` is the product, left to right, of the input columns
/// `terms[term_offsets[k] .. term_offsets[k+1]]` (1 for an empty term).
pub(super) fn lower_polynomial(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let x = c.coerce(ctx.ins[0], DType::F64);
    let dims = c.values[x].dims.clone();
    if dims.len() != 1 {
        return Err(ctx.bad(format!("input must have shape [N, F], found [N, {dims:?}]")));
    }
    let f = dims[0];
    let tname = ctx
        .tensor_name("terms")?
        .ok_or_else(|| ctx.bad("required attribute `terms` is missing"))?;
    let oname = ctx
        .tensor_name("term_offsets")?
        .ok_or_else(|| ctx.bad("required attribute `term_offsets` is missing"))?;
    let raw_terms = super::lookup::vector::<u32>(c, ctx, "terms", tname, DType::U32)?;
    let raw_off = super::lookup::vector::<u32>(c, ctx, "term_offsets", oname, DType::U32)?;
    let k = raw_off.len().saturating_sub(1);
    if raw_off.is_empty() || k > MAX_WIDTH {
        return Err(ctx.bad(format!(
            "`term_offsets` has {} entries, expected 1..={}",
            raw_off.len(),
            MAX_WIDTH + 1
        )));
    }
    let offsets = super::offsets_of(ctx, "term_offsets", raw_off, k, raw_terms.len())?;
    let mut terms = Vec::with_capacity(raw_terms.len());
    for &t in raw_terms {
        let t = t as usize;
        if t >= f {
            return Err(ctx.bad(format!(
                "`terms` names column {t}, outside the {f} input columns"
            )));
        }
        terms.push(t);
    }
    c.table_bytes = c.table_bytes.saturating_add(terms.len() * 8);
    let o = c.new_value(ctx.out, DType::F64, vec![k], k);
    c.push(ctx.node, Kernel::Polynomial { terms, offsets }, vec![x], o);
    Ok(o)
}
