//! `mle_predict` refuses model paths that are not regular files — a FIFO, a directory, a
//! device — promptly, with an error naming the path (a FIFO used to block the query forever).

use std::path::{Path, PathBuf};
use std::time::Duration;

use datafusion::prelude::SessionContext;

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success());
}

/// The error of planning a query over `path`, on its own thread: the test fails if it has
/// not come back within 10 s (a hang).
fn plan_error(path: &Path) -> String {
    let q = format!("SELECT mle_predict('{}', 1.0, 2.0)", path.display());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let e = rt.block_on(async {
            let ctx = SessionContext::new();
            mle_sql::register(&ctx);
            match ctx.sql(&q).await {
                Err(e) => e.to_string(),
                Ok(df) => match df.collect().await {
                    Err(e) => e.to_string(),
                    Ok(_) => format!("query succeeded but should fail: {q}"),
                },
            }
        });
        let _ = tx.send(e);
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the query hung instead of refusing a non-regular file")
}

#[test]
fn fifo_directory_and_device_model_paths_are_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.fifo");
    mkfifo(&fifo);
    let sub = dir.path().join("model_dir.mle");
    std::fs::create_dir(&sub).unwrap();
    let cases: [(PathBuf, &str); 3] = [
        (fifo, "is a FIFO, not a regular file"),
        (sub, "is a directory, not a regular file"),
        (
            PathBuf::from("/dev/null"),
            "is a character device, not a regular file",
        ),
    ];
    for (path, what) in cases {
        let e = plan_error(&path);
        assert!(
            e.contains("mle_predict")
                && e.contains(&path.display().to_string())
                && e.contains(what),
            "{e}"
        );
    }
}
