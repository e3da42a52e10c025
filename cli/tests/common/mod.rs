//! Shared by the `mle` integration tests: running the binary and asserting its outcome.
#![allow(dead_code)] // each test crate uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The workspace root (read at run time: the test binary may come from another checkout that
/// shared the target dir).
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Runs `mle` in the workspace root with `MLE_TRUSTED_KEYS` set to `trusted` (or removed).
pub fn mle_with_trusted(args: &[&str], trusted: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mle"));
    c.args(args)
        .current_dir(repo())
        .env_remove("MLE_TRUSTED_KEYS");
    if let Some(v) = trusted {
        c.env("MLE_TRUSTED_KEYS", v);
    }
    c.output().expect("run mle")
}

/// Runs `mle` in the workspace root without a trust policy from the environment.
pub fn mle(args: &[&str]) -> Output {
    mle_with_trusted(args, None)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Asserts success and returns stdout.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

/// Asserts a failure with exit status 1, an `error:` first line containing every `needles`,
/// and no panic or backtrace.
#[track_caller]
pub fn fails(o: &Output, needles: &[&str]) {
    let e = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "stderr: {e}\nstdout: {}",
        stdout(o)
    );
    assert!(e.starts_with("error: "), "{e}");
    for n in needles {
        assert!(e.contains(n), "missing {n:?} in:\n{e}");
    }
    assert!(
        !e.contains("panicked") && !e.contains("RUST_BACKTRACE"),
        "{e}"
    );
}

/// A path as `&str` (test paths are UTF-8).
pub fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}
