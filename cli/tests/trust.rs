//! The CLI's trust policy: `--public-key` (repeatable) and `MLE_TRUSTED_KEYS`. Four model
//! files — unsigned, signed by another key, tampered after signing (one weight byte changed,
//! every checksum repaired so that only the signature can notice), correctly signed — through
//! every command that loads a model, with the policy from the flag and from the environment.

use std::path::{Path, PathBuf};
use std::process::Output;

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

mod common;
use common::{fails, ok, p, repo, stderr};

const MODEL: &str = "datasets/models/iris.mle";
const DATA: &str = "datasets/iris.parquet";
const FEATURES: &str = "sepal_length, sepal_width, petal_length, petal_width";
const ENV: &str = "MLE_TRUSTED_KEYS";

/// Runs `mle` with `MLE_TRUSTED_KEYS` set to `env` (or removed).
fn mle(args: &[&str], env: Option<&str>) -> Output {
    common::mle_with_trusted(args, env)
}

struct Files {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    trusted_pub: PathBuf,
    other_pub: PathBuf,
    /// A third key, trusted alongside `trusted_pub` in the environment case.
    spare_pub: PathBuf,
}

impl Files {
    fn model(&self, case: &str) -> PathBuf {
        self.dir.join(format!("{case}.mle"))
    }
}

fn write_pub(path: &Path, key: &mle_format::SecretKey) {
    let hex: String = key
        .verifying_key()
        .to_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(path, format!("{hex}\n")).unwrap();
}

/// Flips one byte of the weights section and repairs the weights CRC and the header CRC.
fn tamper(bytes: &mut [u8]) {
    let u64_at = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap());
    let (off, size) = (
        u64_at(bytes, 24 + 16 * 2) as usize,
        u64_at(bytes, 24 + 16 * 2 + 8) as usize,
    );
    assert!(size > 8);
    bytes[off + size / 2] ^= 0x01;
    let crc = crc32fast::hash(&bytes[off..off + size]);
    bytes[88 + 4 * 2..88 + 4 * 3].copy_from_slice(&crc.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..124]);
    bytes[124..128].copy_from_slice(&crc.to_le_bytes());
}

fn files() -> Files {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let trusted = mle_format::generate_key().unwrap();
    let other = mle_format::generate_key().unwrap();
    let (trusted_pub, other_pub) = (dir.join("trusted.pub"), dir.join("other.pub"));
    write_pub(&trusted_pub, &trusted);
    write_pub(&other_pub, &other);
    let spare_pub = dir.join("spare.pub");
    write_pub(&spare_pub, &mle_format::generate_key().unwrap());
    let plain = std::fs::read(repo().join(MODEL)).unwrap();
    std::fs::write(dir.join("unsigned.mle"), &plain).unwrap();
    let signed = mle_format::sign_bytes(&plain, &trusted, "signed.mle").unwrap();
    std::fs::write(dir.join("signed.mle"), &signed).unwrap();
    let wrong = mle_format::sign_bytes(&plain, &other, "wrong_key.mle").unwrap();
    std::fs::write(dir.join("wrong_key.mle"), &wrong).unwrap();
    let mut tampered = signed.clone();
    tamper(&mut tampered);
    std::fs::write(dir.join("tampered.mle"), &tampered).unwrap();
    Files {
        _dir: d,
        dir,
        trusted_pub,
        other_pub,
        spare_pub,
    }
}

/// Every model-loading command on `model`, as argument lists (`out` for score's output).
fn commands(model: &Path, out: &Path) -> Vec<(&'static str, Vec<String>)> {
    let m = p(model).to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        ("score", s(&["score", "-m", &m, DATA, "-o", p(out)])),
        (
            "sql",
            s(&[
                "sql",
                &format!("SELECT mle_predict('{m}', {FEATURES}) AS p FROM 'datasets/iris.parquet'"),
                "--threads",
                "1",
            ]),
        ),
        ("inspect", s(&["inspect", &m])),
        (
            "bench",
            s(&["bench", "-m", &m, "--rows", "10", "--iterations", "5"]),
        ),
        ("verify", s(&["verify", &m])),
    ]
}

/// The three ways to set the policy: the flag, the variable listing the trusted key after a
/// spare one (any listed key suffices), and the flag overriding a variable that trusts only
/// the other key.
fn policies(f: &Files) -> Vec<(&'static str, Vec<String>, Option<String>)> {
    let list = std::env::join_paths([&f.spare_pub, &f.trusted_pub])
        .unwrap()
        .into_string()
        .unwrap();
    vec![
        (
            "flag",
            vec!["--public-key".into(), p(&f.trusted_pub).into()],
            None,
        ),
        ("env", vec![], Some(list)),
        (
            "flag over env",
            vec!["--public-key".into(), p(&f.trusted_pub).into()],
            Some(p(&f.other_pub).to_string()),
        ),
    ]
}

fn run(cmd: &[String], policy: &[String], env: Option<&str>) -> Output {
    let mut args: Vec<&str> = cmd.iter().map(String::as_str).collect();
    args.extend(policy.iter().map(String::as_str));
    mle(&args, env)
}

#[test]
fn untrusted_models_are_refused_by_every_command_with_flag_and_env() {
    let f = files();
    let out = f.dir.join("out.parquet");
    for (case, why) in [
        ("unsigned", "the model is not signed"),
        ("wrong_key", "invalid signature"),
        ("tampered", "invalid signature"),
    ] {
        let model = f.model(case);
        for (name, cmd) in commands(&model, &out) {
            for (how, flag, env) in policies(&f) {
                let o = run(&cmd, &flag, env.as_deref());
                let from = if flag.is_empty() { ENV } else { "--public-key" };
                eprintln!("{case} / {name} / {how}");
                fails(
                    &o,
                    &[
                        &format!("refused model {}", model.display()),
                        "a signature by a trusted key is required",
                        &format!("trusted.pub from {from}"),
                        &format!("{case}.mle: {why}"),
                    ],
                );
                if name == "verify" {
                    assert!(stderr(&o).contains("failed verification"), "{}", stderr(&o));
                }
            }
        }
        assert!(!out.exists(), "score wrote output for a refused model");
    }
}

#[test]
fn signed_model_is_accepted_by_every_command_and_scores_like_the_unsigned_one() {
    let f = files();
    for (how, flag, env) in policies(&f) {
        let out = f
            .dir
            .join(format!("signed-{}.parquet", how.replace(' ', "-")));
        for (name, cmd) in commands(&f.model("signed"), &out) {
            let text = ok(&run(&cmd, &flag, env.as_deref()));
            if name == "verify" {
                assert!(
                    text.contains(&format!("signature valid for {}", p(&f.trusted_pub))),
                    "{how}: {text}"
                );
            }
        }
        // Same predictions as the unsigned model scored without a policy.
        let plain = f.dir.join("plain.parquet");
        ok(&mle(
            &[
                "score",
                "-m",
                p(&f.model("unsigned")),
                DATA,
                "-o",
                p(&plain),
            ],
            None,
        ));
        let (a, b) = (read(&out), read(&plain));
        assert_eq!(a.num_rows(), 150);
        let col = |r: &RecordBatch| r.column_by_name("prediction").unwrap().clone();
        assert_eq!(
            col(&a)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .values(),
            col(&b)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                .values()
        );
        assert_eq!(col(&a).null_count(), 0);
    }
}

fn read(path: &Path) -> RecordBatch {
    let r = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = r.map(|b| b.unwrap()).collect();
    datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

#[test]
fn without_a_policy_every_file_loads_and_verify_says_what_it_did_not_check() {
    let f = files();
    for (case, expect) in [
        ("unsigned", "unsigned"),
        ("wrong_key", "signature not checked"),
        // Checksums repaired: nothing but a signature check could notice.
        ("tampered", "signature not checked"),
    ] {
        let text = ok(&mle(&["verify", p(&f.model(case))], None));
        assert!(text.contains(expect), "{case}: {text}");
    }
    // An empty variable, or one with only separators, sets no policy.
    let sep = std::env::join_paths(["", ""])
        .unwrap()
        .into_string()
        .unwrap();
    for v in ["", sep.as_str()] {
        let text = ok(&mle(&["verify", p(&f.model("unsigned"))], Some(v)));
        assert!(text.contains("unsigned"), "{v:?}: {text}");
    }
}

#[test]
fn bad_key_files_in_the_policy_are_errors_naming_them() {
    let f = files();
    let bad = f.dir.join("bad.pub");
    std::fs::write(&bad, "not a key").unwrap();
    let model = f.model("signed");
    let list = std::env::join_paths([&f.trusted_pub, &bad])
        .unwrap()
        .into_string()
        .unwrap();
    fails(
        &mle(&["verify", p(&model)], Some(&list)),
        &[
            &format!("cannot read public key {} (listed in {ENV})", bad.display()),
            "bad key file",
        ],
    );
    let missing = f.dir.join("missing.pub");
    fails(
        &mle(
            &["score", "-m", p(&model), DATA, "-o", "x.parquet"],
            Some(p(&missing)),
        ),
        &[&format!("cannot read public key {}", missing.display())],
    );
    fails(
        &mle(&["inspect", p(&model), "--public-key", p(&bad)], None),
        &[&format!("cannot read public key {}", bad.display())],
    );
}

#[test]
fn sql_with_models_signed_by_different_trusted_keys_is_refused() {
    let f = files();
    // `wrong_key.mle` is signed by the other key: trust both keys.
    let wrong = f.model("wrong_key");
    let list = std::env::join_paths([&f.other_pub, &f.trusted_pub])
        .unwrap()
        .into_string()
        .unwrap();
    let q = |a: &Path, b: &Path| {
        format!(
            "SELECT mle_predict('{}', {FEATURES}) AS a, mle_predict('{}', {FEATURES}) AS b FROM 'datasets/iris.parquet'",
            a.display(),
            b.display()
        )
    };
    let signed = f.model("signed");
    fails(
        &mle(&["sql", &q(&signed, &wrong)], Some(&list)),
        &[
            "are signed by different keys",
            "signed.mle",
            "wrong_key.mle",
        ],
    );
    // Each alone is accepted under the two-key policy; the same model twice too.
    ok(&mle(&["sql", &q(&wrong, &wrong)], Some(&list)));
    let text = ok(&mle(&["sql", &q(&signed, &signed)], Some(&list)));
    assert!(text.contains("| a") && text.contains("| b"), "{text}");
    // An untrusted second model is refused, naming it.
    fails(
        &mle(&["sql", &q(&signed, &f.model("tampered"))], Some(&list)),
        &["refused model", "tampered.mle: invalid signature"],
    );
}
