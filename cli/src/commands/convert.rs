//! `mle convert`: XGBoost JSON/UBJSON, LightGBM text, ONNX or CatBoost JSON model → `.mle`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use mle_exec::Model;
use mle_format::{MleFile, QuantMode, ReadOptions, WriteOptions, DEFAULT_ZSTD_LEVEL};

use crate::util::bytes;

/// Source formats `mle convert` reads.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum From {
    /// XGBoost `save_model` JSON or UBJSON.
    Xgboost,
    /// LightGBM `save_model` text.
    Lightgbm,
    /// ONNX (`.onnx`, a serialized `ModelProto`); external tensor data is read from the
    /// model's directory only.
    Onnx,
    /// CatBoost `save_model(format="json")`.
    Catboost,
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
    /// The input's format (default: guessed from its content; ONNX and CatBoost are never
    /// guessed).
    #[arg(long, value_enum)]
    from: Option<From>,
    /// Compress the weights with zstd at the default level (`mle_format::DEFAULT_ZSTD_LEVEL`).
    #[arg(long)]
    compress: bool,
    /// Quantize dense float weights (tree thresholds and leaves are always kept exact).
    #[arg(long, value_enum)]
    quantize: Option<Quantize>,
}

/// Runs `mle convert`.
pub fn run(a: Args) -> Result<()> {
    let name = a.input.display().to_string();
    let read = || std::fs::read(&a.input).with_context(|| format!("cannot convert {name}"));
    let builder = match a.from {
        None => mle_import::import_file(&a.input, None),
        Some(From::Xgboost) => mle_import::import_xgboost(&read()?, &name),
        Some(From::Lightgbm) => match String::from_utf8(read()?) {
            Ok(text) => mle_import::import_lightgbm(&text, &name),
            Err(e) => bail!("cannot convert {name}: a LightGBM text model must be UTF-8 ({e})"),
        },
        // External tensor data is resolved inside the model's own directory.
        Some(From::Onnx) => mle_import::onnx::import_file(&a.input),
        Some(From::Catboost) => mle_import::import_catboost(&read()?, &name),
    }
    .with_context(|| format!("cannot convert {name}"))?;
    let opts = WriteOptions {
        compression: a.compress.then_some(DEFAULT_ZSTD_LEVEL),
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
