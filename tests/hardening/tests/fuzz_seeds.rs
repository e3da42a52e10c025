//! Seeds for the `load_and_run` fuzz target: every importer fixture (XGBoost JSON, LightGBM
//! text) converted to `.mle`, plain, compressed and fp16-quantized. Run by `scripts/fuzz.sh`:
//! `MLE_FUZZ_SEEDS=DIR cargo test -p mle-hardening --test fuzz_seeds -- --ignored`.

use std::path::{Path, PathBuf};

use mle_format::{QuantMode, WriteOptions};

fn fixtures() -> Vec<std::path::PathBuf> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join("../fixtures");
    let mut out = Vec::new();
    for dir in ["xgboost", "lightgbm"] {
        for e in std::fs::read_dir(root.join(dir)).expect("fixtures") {
            let p = e.expect("entry").path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if (name.ends_with(".json") && !name.ends_with(".expected.json"))
                || name.ends_with(".txt")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn fixtures_convert_and_compile() {
    // Not only a seed writer: every fixture the importers accept converts and compiles.
    let mut n = 0;
    for p in fixtures() {
        let Ok(b) = mle_import::import_file(&p, None) else {
            continue;
        };
        let bytes = b.to_bytes(&WriteOptions::default()).expect("write");
        mle_exec::Model::from_bytes(&bytes, &p.display().to_string()).expect("compile");
        n += 1;
    }
    assert!(n >= 30, "only {n} fixtures imported");
}

#[test]
#[ignore = "writes fuzz seeds; run by scripts/fuzz.sh"]
fn write_fuzz_seeds() {
    let dir = std::env::var("MLE_FUZZ_SEEDS").expect("MLE_FUZZ_SEEDS");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for p in fixtures() {
        let Ok(b) = mle_import::import_file(&p, None) else {
            continue;
        };
        let stem = p
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("m")
            .to_string();
        let dirname = p
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|s| s.to_str())
            .unwrap_or("");
        for (tag, opts) in [
            ("plain", WriteOptions::default()),
            (
                "zstd",
                WriteOptions {
                    compression: Some(3),
                    ..Default::default()
                },
            ),
            (
                "fp16",
                WriteOptions {
                    quantization: Some(QuantMode::Fp16),
                    ..Default::default()
                },
            ),
        ] {
            let bytes = b.to_bytes(&opts).expect("write");
            if bytes.len() <= 65536 {
                std::fs::write(
                    Path::new(&dir).join(format!("{dirname}-{stem}-{tag}.mle")),
                    bytes,
                )
                .expect("write seed");
            }
        }
    }
}
