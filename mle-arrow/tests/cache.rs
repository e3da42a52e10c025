//! The shared model cache: file identity, reloads, bounds, trust policy, pins, and the
//! regular-files-only rule.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arrow::array::{ArrayRef, AsArray, Float64Array};
use arrow::datatypes::Float64Type;
use mle_arrow::cache::{CacheError, ModelCache, SessionPool};
use mle_arrow::{predict_arrays, FileIdentity};
use mle_exec::RunOptions;
use mle_format::{
    Attr, DType, InputSchema, Metadata, ModelBuilder, Node, OutputSchema, Task, ValueInfo,
    WriteOptions,
};

/// `prediction = 0.5·a − 2·b + intercept` (same file size for every intercept).
fn linear_model(intercept: f32) -> Vec<u8> {
    let meta = Metadata {
        framework: "test".into(),
        framework_version: String::new(),
        model_type: "LinearRegression".into(),
        task: Task::Regression,
        input: InputSchema {
            feature_names: vec!["a".into(), "b".into()],
            dtype: DType::F64,
            shape: vec![-1, 2],
            features: Vec::new(),
        },
        output: OutputSchema {
            names: vec!["prediction".into()],
            dtypes: vec![DType::F64],
            class_labels: None,
        },
        export_time: String::new(),
        exporter_version: String::new(),
        user: Default::default(),
    };
    let mut b = ModelBuilder::new(meta);
    b.add_weight("coef", &[1, 2], &[0.5, -2.0]).unwrap();
    b.add_weight("intercept", &[1], &[intercept]).unwrap();
    b.push_node(
        Node::new("linear", "LinearModel", &["X"], &["prediction"])
            .with("coef", Attr::Tensor("coef".into()))
            .with("intercept", Attr::Tensor("intercept".into())),
    );
    b.set_inputs(vec![ValueInfo {
        name: "X".into(),
        dtype: DType::F64,
        shape: vec![-1, 2],
    }]);
    b.set_outputs(vec![ValueInfo {
        name: "prediction".into(),
        dtype: DType::F64,
        shape: vec![-1, 1],
    }]);
    b.to_bytes(&WriteOptions::default()).unwrap()
}

/// The model's prediction for `a = 0, b = 0`: its intercept.
fn intercept_of(cache: &ModelCache, path: &Path) -> f64 {
    let m = cache.get(path, None).unwrap();
    let kind = m.output_kind().unwrap();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Float64Array::from(vec![0.0])),
        Arc::new(Float64Array::from(vec![0.0])),
    ];
    let names = vec!["a".to_string(), "b".to_string()];
    let out = m
        .with_session(|s| predict_arrays(s, &kind, &cols, &names, RunOptions::default()))
        .unwrap();
    out.prediction.as_primitive::<Float64Type>().value(0)
}

fn identity(path: &Path) -> FileIdentity {
    FileIdentity::of(&std::fs::metadata(path).unwrap())
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn a_hit_returns_the_same_compiled_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mle");
    std::fs::write(&path, linear_model(1.0)).unwrap();
    let cache = ModelCache::new(4);
    let a = cache.get(&path, None).unwrap();
    // Another spelling of the same file is the same entry.
    let b = cache
        .get(&dir.path().join(".").join("m.mle"), None)
        .unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(cache.len(), 1);
    assert_eq!(a.identity(), identity(&path));
}

#[test]
fn same_file_replaced_by_rename_gives_the_new_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mle");
    std::fs::write(&path, linear_model(1.0)).unwrap();
    let cache = ModelCache::new(4);
    assert_eq!(intercept_of(&cache, &path), 1.0);
    let old = cache.get(&path, None).unwrap();
    // Atomic replacement with the same size and the same modification time: only the inode
    // tells the versions apart.
    let tmp = dir.path().join("m.tmp");
    std::fs::write(&tmp, linear_model(2.0)).unwrap();
    set_mtime(&tmp, identity(&path).modified.unwrap());
    std::fs::rename(&tmp, &path).unwrap();
    let (was, now) = (old.identity(), identity(&path));
    assert_eq!((was.size, was.modified), (now.size, now.modified));
    assert_ne!(was.ino, now.ino);
    assert_eq!(intercept_of(&cache, &path), 2.0);
    assert!(!Arc::ptr_eq(&old, &cache.get(&path, None).unwrap()));
    assert_eq!(cache.len(), 1, "the new version replaces the old entry");
}

#[test]
fn same_inode_reused_by_a_different_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mle");
    std::fs::write(&path, linear_model(1.0)).unwrap();
    let cache = ModelCache::new(4);
    assert_eq!(intercept_of(&cache, &path), 1.0);
    let before = identity(&path);
    // Rewritten in place: the same inode and size now hold another model. Its modification
    // time differs (set explicitly, so a coarse clock cannot hide the change).
    std::fs::write(&path, linear_model(3.0)).unwrap();
    set_mtime(&path, before.modified.unwrap() + Duration::from_secs(1));
    let after = identity(&path);
    assert_eq!(
        (before.dev, before.ino, before.size),
        (after.dev, after.ino, after.size)
    );
    assert_eq!(intercept_of(&cache, &path), 3.0);

    // Deleted and created again: whether or not the file system hands out the freed inode
    // number again, the new file is a new version.
    let prev = identity(&path);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, linear_model(4.0)).unwrap();
    set_mtime(&path, prev.modified.unwrap() + Duration::from_secs(1));
    assert_eq!(intercept_of(&cache, &path), 4.0);
}

#[test]
fn the_cache_is_bounded_and_drops_the_least_recently_used() {
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<_> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("m{i}.mle"));
            std::fs::write(&p, linear_model(i as f32)).unwrap();
            p
        })
        .collect();
    let cache = ModelCache::new(2);
    let a = cache.get(&paths[0], None).unwrap();
    let b = cache.get(&paths[1], None).unwrap();
    // Use `a` again, so `b` is the least recently used when `c` comes in.
    assert!(Arc::ptr_eq(&a, &cache.get(&paths[0], None).unwrap()));
    cache.get(&paths[2], None).unwrap();
    assert_eq!(cache.len(), 2);
    assert!(Arc::ptr_eq(&a, &cache.get(&paths[0], None).unwrap()));
    assert!(
        !Arc::ptr_eq(&b, &cache.get(&paths[1], None).unwrap()),
        "b was dropped and loaded again"
    );
    assert_eq!(cache.len(), 2);
}

#[test]
fn the_session_pool_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mle");
    std::fs::write(&path, linear_model(1.0)).unwrap();
    let model = ModelCache::new(1).get(&path, None).unwrap().model().clone();
    let pool = SessionPool::new(model, 2);
    let taken: Vec<_> = (0..5).map(|_| pool.take()).collect();
    assert_eq!(pool.idle(), 0);
    for s in taken {
        pool.give_back(s);
    }
    assert_eq!(pool.idle(), 2);
}

#[test]
fn the_trust_policy_is_part_of_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mle");
    std::fs::write(&path, linear_model(1.0)).unwrap();
    let cache = ModelCache::new(4);
    cache.get(&path, None).unwrap();
    let public = mle_format::sign::generate_key().unwrap().verifying_key();
    let err = cache.get(&path, Some(&public)).unwrap_err();
    let msg = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(matches!(err, CacheError::Load { .. }), "{msg}");
    assert!(msg.contains("m.mle") && msg.contains("not signed"), "{msg}");
}

#[test]
fn a_pin_keeps_its_version_until_it_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.mle");
    let p = path.to_str().unwrap();
    std::fs::write(&path, linear_model(1.0)).unwrap();
    let cache = ModelCache::new(4);
    let token = cache.pin(p, None).unwrap();
    let pinned = cache.get_pinned(p, None, &token).unwrap();
    let tmp = dir.path().join("m.tmp");
    std::fs::write(&tmp, linear_model(2.0)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    assert!(Arc::ptr_eq(
        &pinned,
        &cache.get_pinned(p, None, &token).unwrap()
    ));
    assert_eq!(intercept_of(&cache, &path), 2.0);
    cache.clear();
    let err = cache.get_pinned(p, None, &token).unwrap_err();
    assert!(matches!(err, CacheError::PinnedVersionGone { .. }), "{err}");
    let err = cache.get_pinned(p, None, "garbage").unwrap_err();
    assert!(matches!(err, CacheError::PinToken { .. }), "{err}");
}

/// Runs `f` on a thread and fails the test if it has not returned within 10 s (a hang).
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the call hung instead of refusing a non-regular file")
}

#[cfg(unix)]
fn mkfifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[cfg(unix)]
#[test]
fn fifo_directory_and_device_are_refused_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.fifo");
    mkfifo(&fifo);
    let sub = dir.path().join("model_dir.mle");
    std::fs::create_dir(&sub).unwrap();
    for (path, kind) in [
        (fifo, "a FIFO"),
        (sub, "a directory"),
        (Path::new("/dev/null").to_path_buf(), "a character device"),
    ] {
        let p = path.clone();
        let err = promptly(move || ModelCache::new(2).get(&p, None).unwrap_err());
        let msg = err.to_string();
        assert!(
            matches!(err, CacheError::NotRegularFile { .. }),
            "{}: {msg}",
            path.display()
        );
        assert!(
            msg.contains(&path.display().to_string()) && msg.contains(kind),
            "{msg}"
        );
        let p = path.clone();
        let err = promptly(move || {
            mle_arrow::open_model_file(&p, &mle_format::ReadOptions::default()).unwrap_err()
        });
        assert!(matches!(err, CacheError::NotRegularFile { .. }), "{err}");
    }
}
