//! `mle inspect`: what a model file holds.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use mle_format::{Categories, ClassLabels, InputKind};
use serde_json::json;

use crate::util::{bytes, open_model_file, TrustArgs};

/// Arguments of `mle inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The model file (.mle).
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    trust: TrustArgs,
}

/// Runs `mle inspect`.
pub fn run(a: Args) -> Result<()> {
    let file = open_model_file(&a.model, a.trust.policy()?.as_ref())?;
    let h = file.header();
    let meta = file.metadata();
    let graph = file.graph();
    let mut ops: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &graph.nodes {
        *ops.entry(n.op.as_str()).or_default() += 1;
    }
    let quantized = graph
        .tensors
        .iter()
        .filter(|t| t.quantization.is_some())
        .count();
    // Each feature's kind and, for categories, how many there are and of which type (a file
    // without typed features has only floats).
    let typed = file
        .input_features()
        .with_context(|| format!("cannot read the input features of {}", a.model.display()))?;
    // A file written without `input.features`: every feature is a float.
    let untyped = meta.input.features.is_empty();
    let features: Vec<Feature> = typed
        .iter()
        .map(|f| Feature {
            name: f.name.to_string(),
            kind: kind_name(&f.kind),
            categories: match &f.kind {
                InputKind::Category(Categories::Strings(v)) => Some(("string", v.len())),
                InputKind::Category(Categories::Integers(v)) => Some(("integer", v.len())),
                _ => None,
            },
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if a.json {
        let feature_json: Vec<serde_json::Value> = features
            .iter()
            .map(|f| {
                let mut v = json!({"name": f.name, "kind": f.kind});
                if let Some((t, n)) = f.categories {
                    v["categories"] = json!(n);
                    v["category_type"] = json!(t);
                }
                v
            })
            .collect();
        let v = json!({
            "path": a.model.display().to_string(),
            "format_version": format!("{}.{}", h.major, h.minor),
            "file_size": h.file_size,
            "compressed": h.compressed(),
            "signed": h.signed(),
            "weights_bytes": h.weights_raw_size,
            "quantized_tensors": quantized,
            "features": feature_json,
            "metadata": meta,
            "graph": {
                "inputs": graph.inputs,
                "outputs": graph.outputs,
                "nodes": graph.nodes.len(),
                "ops": ops,
                "tensors": graph.tensors.len(),
            },
        });
        serde_json::to_writer_pretty(&mut out, &v)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(out, "{}", a.model.display())?;
    writeln!(
        out,
        "  format       {}.{}, {} ({}{}{})",
        h.major,
        h.minor,
        bytes(h.file_size),
        if h.compressed() {
            "zstd"
        } else {
            "uncompressed"
        },
        if quantized > 0 { ", quantized" } else { "" },
        if h.signed() { ", signed" } else { ", unsigned" },
    )?;
    let version = if meta.framework_version.is_empty() {
        String::new()
    } else {
        format!(" {}", meta.framework_version)
    };
    writeln!(out, "  framework    {}{version}", meta.framework)?;
    writeln!(out, "  model        {} ({:?})", meta.model_type, meta.task)?;
    writeln!(
        out,
        "  input        {} features{}, {} : {}",
        meta.n_features(),
        if untyped { " (all float)" } else { "" },
        meta.input.dtype,
        meta.input.feature_names.join(", ")
    )?;
    if !untyped {
        let width = features
            .iter()
            .map(|f| f.name.chars().count())
            .max()
            .unwrap_or(0);
        for (i, f) in features.iter().enumerate() {
            let label = if i == 0 { "features" } else { "" };
            let cats = match f.categories {
                Some((t, n)) => format!(", {n} {t} categor{}", if n == 1 { "y" } else { "ies" }),
                None => String::new(),
            };
            writeln!(out, "  {label:<12} {:<width$}  {}{cats}", f.name, f.kind)?;
        }
    }
    for (name, dt) in meta.output.names.iter().zip(&meta.output.dtypes) {
        writeln!(out, "  output       {name} ({dt})")?;
    }
    match &meta.output.class_labels {
        Some(ClassLabels::Int(v)) => writeln!(out, "  classes      {v:?}")?,
        Some(ClassLabels::Str(v)) => writeln!(out, "  classes      {}", v.join(", "))?,
        None => {}
    }
    let ops: Vec<String> = ops.iter().map(|(k, v)| format!("{k}×{v}")).collect();
    writeln!(
        out,
        "  graph        {} nodes ({}), {} tensors, {} of weights",
        graph.nodes.len(),
        ops.join(", "),
        graph.tensors.len(),
        bytes(h.weights_raw_size)
    )?;
    if !meta.exporter_version.is_empty() || !meta.export_time.is_empty() {
        writeln!(
            out,
            "  exported     {} {}",
            meta.exporter_version, meta.export_time
        )?;
    }
    for (k, v) in &meta.user {
        writeln!(out, "  user.{k:<7} {v}")?;
    }
    Ok(())
}

/// One input feature as shown: its name, kind and (for categories) their type and number.
struct Feature {
    name: String,
    kind: &'static str,
    categories: Option<(&'static str, usize)>,
}

fn kind_name(k: &InputKind<'_>) -> &'static str {
    match k {
        InputKind::Float => "float",
        InputKind::Integer => "integer",
        InputKind::Boolean => "boolean",
        InputKind::String => "string",
        InputKind::Category(_) => "category",
    }
}
