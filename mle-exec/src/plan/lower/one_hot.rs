//! `OneHot`: one column of codes → indicator columns (scikit-learn's `OneHotEncoder`, and
//! `KBinsDiscretizer(encode="onehot")` over `Bucketize`).

use mle_format::DType;

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::plan::ir::{Kernel, ValueId};
use crate::plan::MAX_WIDTH;

/// `OneHot`: code `c` of input column `feature` sets output column `slots[c]` (none when
/// negative); NaN sets `missing`, any other value `unknown` (each: none when negative).
pub(super) fn lower_one_hot(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    c.float_in(ctx, ctx.ins[0])?;
    let x = c.coerce(ctx.ins[0], DType::F64);
    let feature = super::feature_of(c, ctx, x)?;
    let width = ctx.int("n_columns", None)?;
    let width = usize::try_from(width)
        .ok()
        .filter(|&w| w <= MAX_WIDTH)
        .ok_or_else(|| {
            ctx.bad(format!(
                "attribute `n_columns` is {width}, expected 0..={MAX_WIDTH}"
            ))
        })?;
    let slot = |key: &str, v: i64| -> Result<i32, ExecError> {
        if v < 0 {
            Ok(-1)
        } else if (v as u64) < width as u64 {
            Ok(v as i32)
        } else {
            Err(ctx.bad(format!(
                "`{key}` holds slot {v}, outside the {width} output columns"
            )))
        }
    };
    let name = ctx
        .tensor_name("slots")?
        .ok_or_else(|| ctx.bad("required attribute `slots` is missing"))?;
    let raw = super::lookup::vector::<i32>(c, ctx, "slots", name, DType::I32)?;
    let slots = raw
        .iter()
        .map(|&s| slot("slots", s as i64))
        .collect::<Result<Vec<_>, _>>()?;
    let missing = slot("missing", ctx.int("missing", Some(-1))?)?;
    let unknown = slot("unknown", ctx.int("unknown", Some(-1))?)?;
    c.table_bytes = c.table_bytes.saturating_add(slots.len() * 4);
    let o = c.new_value(ctx.out, DType::F64, vec![width], width);
    c.push(
        ctx.node,
        Kernel::OneHot {
            feature,
            slots,
            missing,
            unknown,
        },
        vec![x],
        o,
    );
    Ok(o)
}
