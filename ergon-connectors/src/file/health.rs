//! Health: can the connector reach its files (`validate --connect`)?

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use ergon_core::TaskError;

/// An existing `path` must be a readable file; a missing one must be creatable: the
/// nearest existing ancestor is a directory a file can be created in.
pub(super) fn check(path: &Path) -> Result<(), TaskError> {
    let fail = |what: &str, err: io::Error| {
        TaskError::system(format!("{what} {}", path.display()))
            .with_source(err)
            .non_retryable()
    };
    match std::fs::metadata(path) {
        Ok(metadata) if metadata.is_dir() => Err(TaskError::system(format!(
            "{} is a directory, not a file",
            path.display()
        ))
        .non_retryable()),
        Ok(_) => File::open(path)
            .map(drop)
            .map_err(|err| fail("cannot read", err)),
        Err(err)
            if matches!(
                err.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            creatable(path)
        }
        Err(err) => Err(fail("cannot reach", err)),
    }
}

fn creatable(path: &Path) -> Result<(), TaskError> {
    let dir = path
        .ancestors()
        .skip(1)
        .map(|dir| {
            if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }
        })
        .find(|dir| dir.exists())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(TaskError::system(format!(
            "cannot create {}: {} is not a directory",
            path.display(),
            dir.display()
        ))
        .non_retryable());
    }
    // Permission bits do not tell (ACLs, root): create and remove a probe file.
    static PROBES: AtomicU64 = AtomicU64::new(0);
    let probe = dir.join(format!(
        ".ergon-health-{}-{}",
        std::process::id(),
        PROBES.fetch_add(1, Relaxed)
    ));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|err| {
            TaskError::system(format!(
                "cannot create {}: cannot write in {}",
                path.display(),
                dir.display()
            ))
            .with_source(err)
            .non_retryable()
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}
