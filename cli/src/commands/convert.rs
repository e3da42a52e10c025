//! `mle convert`: XGBoost JSON/UBJSON or LightGBM text model → `.mle`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use mle_exec::Model;
use mle_format::{MleFile, QuantMode, ReadOptions, WriteOptions};

use crate::util::bytes;

/// Source formats `mle convert` reads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum From {
    /// XGBoost `save_model` JSON or UBJSON.
    Xgboost,
    /// LightGBM `save_model` text.
    Lightgbm,
}

/// Weight quantization.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Quantize {
    /// IEEE half precision.
    Fp16,
    /// Symmetric int8 with per-channel scales.
    Int8,
}

/// Arguments of `mle convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The framework's model file.
    input: PathBuf,
    /// The `.mle` file to write.
    output: PathBuf,
    /// The input's format (default: guessed from its content).
    #[arg(long, value_enum)]
    from: Option<From>,
    /// Compress the weights with zstd.
    #[arg(long)]
    compress: bool,
    /// Quantize dense float weights (tree thresholds and leaves are always kept exact).
    #[arg(long, value_enum)]
    quantize: Option<Quantize>,
}

/// Runs `mle convert`.
pub fn run(a: Args) -> Result<()> {
    let name = a.input.display().to_string();
    let builder = match a.from {
        None => mle_import::import_file(&a.input, None),
        Some(from) => {
            let bytes =
                std::fs::read(&a.input).with_context(|| format!("cannot convert {name}"))?;
            match from {
                From::Xgboost => mle_import::import_xgboost(&bytes, &name),
                From::Lightgbm => match std::str::from_utf8(&bytes) {
                    Ok(text) => mle_import::import_lightgbm(text, &name),
                    Err(e) => {
                        bail!("cannot convert {name}: a LightGBM text model must be UTF-8 ({e})")
                    }
                },
            }
        }
    }
    .with_context(|| format!("cannot convert {name}"))?;
    let opts = WriteOptions {
        compression: a.compress.then_some(19),
        quantization: a.quantize.map(|q| match q {
            Quantize::Fp16 => QuantMode::Fp16,
            Quantize::Int8 => QuantMode::Int8,
        }),
        signing_key: None,
    };
    let size = builder
        .write(&a.output, &opts)
        .with_context(|| format!("cannot write {}", a.output.display()))?;
    // Read the result back and compile it: a file we write must load.
    let file = MleFile::open(&a.output, &ReadOptions::default())
        .with_context(|| format!("{} does not read back", a.output.display()))?;
    let meta = file.metadata().clone();
    Model::compile(file).with_context(|| format!("{} does not compile", a.output.display()))?;
    println!(
        "converted {} ({} {}, {:?}, {} features) -> {} ({})",
        a.input.display(),
        meta.framework,
        meta.model_type,
        meta.task,
        meta.n_features(),
        a.output.display(),
        bytes(size)
    );
    Ok(())
}
