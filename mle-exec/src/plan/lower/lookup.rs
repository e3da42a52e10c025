//! `Lookup`: categories → codes, folded into the plan's input stage.
//!
//! A `Lookup` reads the graph input or the output of the Lookup before it (the Lookups form
//! one chain at the input) and produces the same columns with column `feature` replaced by
//! its codes. It adds no step: its output *is* the graph input value of the plan, which the
//! executor fills from the batch after running every Lookup of the chain (the input stage,
//! once per batch or row). Nodes other than Lookups may read only the chain's last output.

use mle_format::{DType, IntVocabulary, Vocabulary};

use super::{Compiler, Ctx};
use crate::error::ExecError;
use crate::lookup::{Index, IntIndex, LookupStage, Missing, StrIndex, Unknown};
use crate::plan::ir::ValueId;

/// A rank-1 tensor attribute of dtype `T`, borrowed from the file.
pub(super) fn vector<'f, T: mle_format::Element>(
    c: &Compiler<'f>,
    ctx: &Ctx<'_>,
    key: &str,
    name: &str,
    dtype: DType,
) -> Result<&'f [T], ExecError> {
    let desc = c.file.graph().tensor(name).ok_or_else(|| {
        ctx.bad(format!(
            "attribute `{key}` names tensor {name:?}, which does not exist"
        ))
    })?;
    if desc.dtype != dtype || desc.quantization.is_some() || desc.shape.len() != 1 {
        return Err(ctx.bad(format!(
            "tensor {name:?} (attribute `{key}`) must be a rank-1 {dtype} tensor, found {} of shape {:?}{}",
            desc.dtype,
            desc.shape,
            if desc.quantization.is_some() { ", quantized" } else { "" }
        )));
    }
    Ok(c.file.tensor_as::<T>(name)?)
}

/// `Lookup`: checks the chain, the feature and the vocabulary, and builds the index.
pub(super) fn lower_lookup(c: &mut Compiler<'_>, ctx: &Ctx<'_>) -> Result<ValueId, ExecError> {
    ctx.n_in(1)?;
    let input = ctx.node.inputs[0].as_str();
    if input != c.chain_tail {
        return Err(ctx.bad(if c.chain.contains(input) {
            format!(
                "Lookups form one chain from the graph input: this one reads {input:?}, but the chain ends at {:?}",
                c.chain_tail
            )
        } else {
            format!(
                "input {input:?} must be the graph input or the output of the Lookup before (the chain ends at {:?})",
                c.chain_tail
            )
        }));
    }
    let n_features = c.values[ctx.x].width;
    let feature = ctx.int("feature", None)?;
    let feature = usize::try_from(feature)
        .ok()
        .filter(|&f| f < n_features)
        .ok_or_else(|| {
            ctx.bad(format!(
                "attribute `feature` is {feature}, outside the {n_features} input features"
            ))
        })?;
    if let Some(other) = c.lookups.iter().find(|s| s.feature == feature) {
        return Err(ctx.bad(format!(
            "feature {feature} is looked up twice (also by {:?})",
            other.node
        )));
    }
    let unknown = match ctx.string("unknown")?.unwrap_or("missing") {
        "missing" => Unknown::Missing,
        "error" => Unknown::Error,
        "code" => Unknown::Code,
        other => {
            return Err(ctx.bad(format!(
                "attribute `unknown` is {other:?}, expected \"missing\", \"error\" or \"code\""
            )))
        }
    };
    let missing = match ctx.string("missing")?.unwrap_or("missing") {
        "missing" => Missing::Missing,
        "error" => Missing::Error,
        other => {
            return Err(ctx.bad(format!(
                "attribute `missing` is {other:?}, expected \"missing\" or \"error\""
            )))
        }
    };
    let vocab = |e: mle_format::VocabError| ctx.bad(format!("vocabulary: {e}"));
    let index =
        match (
            ctx.tensor_name("bytes")?,
            ctx.tensor_name("offsets")?,
            ctx.tensor_name("values")?,
        ) {
            (Some(b), Some(o), None) => {
                let bytes = vector::<u8>(c, ctx, "bytes", b, DType::U8)?;
                let offsets = vector::<u32>(c, ctx, "offsets", o, DType::U32)?;
                Index::Str(StrIndex::new(
                    &Vocabulary::new(bytes, offsets).map_err(vocab)?,
                ))
            }
            (None, None, Some(v)) => {
                let values = vector::<i64>(c, ctx, "values", v, DType::I64)?;
                Index::Int(IntIndex::new(&IntVocabulary::new(values).map_err(vocab)?))
            }
            (b, o, v) => {
                let found: Vec<&str> = [("`bytes`", b), ("`offsets`", o), ("`values`", v)]
                    .iter()
                    .filter_map(|(k, t)| t.map(|_| *k))
                    .collect();
                return Err(ctx.bad(format!(
                "the vocabulary is `bytes` + `offsets` (strings) or `values` (integers); found {}",
                if found.is_empty() { "none".to_string() } else { found.join(", ") }
            )));
            }
        };
    c.table_bytes = c.table_bytes.saturating_add(match &index {
        Index::Str(ix) => ix.heap_bytes(),
        Index::Int(ix) => ix.heap_bytes(),
    });
    c.lookups.push(LookupStage {
        node: ctx.node.name.clone(),
        feature,
        index,
        unknown,
        missing,
    });
    c.chain.insert(ctx.out.to_string());
    c.chain_tail = ctx.out.to_string();
    Ok(ctx.x)
}
