//! Model paths that are not regular files: a FIFO, a directory, a device. Every command that
//! opens a model returns promptly with an error naming the path (`mle verify` on a FIFO used
//! to block forever, and a directory reported "No such device (os error 19)").

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{fails, p, repo};

const DATA: &str = "datasets/breast_cancer.parquet";

/// Runs `mle` with a deadline: the test fails (and the process is killed) after 20 s.
fn mle_promptly(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mle"))
        .args(args)
        .current_dir(repo())
        .env_remove("MLE_TRUSTED_KEYS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mle");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait for mle").is_some() {
            return child.wait_with_output().expect("collect mle output");
        }
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mle {args:?} hung instead of refusing a non-regular file");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn mkfifo(path: &Path) {
    let status = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

/// Every command that opens a model, on `model`.
fn commands(model: &str, out: &str) -> Vec<Vec<String>> {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        s(&["verify", model]),
        s(&["score", "--model", model, DATA, "-o", out]),
        s(&["inspect", model]),
        s(&["bench", "-m", model, "--rows", "10", "--iterations", "5"]),
        s(&["sql", &format!("SELECT mle_predict('{model}', 1.0, 2.0)")]),
    ]
}

#[test]
fn fifo_directory_and_device_models_are_refused_promptly_by_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.fifo");
    mkfifo(&fifo);
    let sub = dir.path().join("model_dir.mle");
    std::fs::create_dir(&sub).unwrap();
    let out = dir.path().join("out.parquet");
    let cases: [(PathBuf, &str); 3] = [
        (fifo, "is a FIFO, not a regular file"),
        (sub, "is a directory, not a regular file"),
        (
            PathBuf::from("/dev/null"),
            "is a character device, not a regular file",
        ),
    ];
    for (path, what) in &cases {
        for cmd in commands(p(path), p(&out)) {
            let args: Vec<&str> = cmd.iter().map(String::as_str).collect();
            let o = mle_promptly(&args);
            eprintln!("mle {args:?}");
            fails(&o, &[p(path), what]);
        }
    }
    assert!(!out.exists(), "score wrote output for a refused model");
}
