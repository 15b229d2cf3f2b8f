//! The code-map invariants of ARCHITECTURE.md that are about where code lives, checked on the
//! source itself: only tendhost-exec spawns processes, the HTTP layer never names the store,
//! and the persistence side imports nothing from the HTTP layer.

use std::path::{Path, PathBuf};

fn crates_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates")
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in
            std::fs::read_dir(&dir).unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path, text));
            }
        }
    }
    assert!(!files.is_empty(), "no sources under {}", dir.display());
    files
}

/// The lines of `text` outside `#[cfg(test)]` modules (which start a file's tail here).
fn non_test_part(text: &str) -> &str {
    text.find("#[cfg(test)]").map_or(text, |at| &text[..at])
}

#[test]
fn only_the_exec_crate_spawns_processes() {
    let mut offenders = Vec::new();
    for krate in [
        "tendhost",
        "tendhost-core",
        "tendhost-pkg",
        "tendhost-api",
        "tendhost-store",
        "tendhost-auth",
    ] {
        for (path, text) in sources(&crates_dir().join(krate).join("src")) {
            let code = non_test_part(&text);
            if code.contains("process::Command") || code.contains("Command::new(") {
                offenders.push(path.display().to_string());
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "processes spawned outside tendhost-exec: {offenders:#?}"
    );
}

#[test]
fn handlers_never_name_the_store_and_persistence_never_names_http() {
    let daemon = crates_dir().join("tendhost/src");
    let mut offenders = Vec::new();
    for (path, text) in sources(&daemon.join("http")) {
        if non_test_part(&text).contains("tendhost_store") {
            offenders.push(format!("{} names tendhost_store", path.display()));
        }
    }
    for (path, text) in sources(&daemon.join("persist")) {
        let code = non_test_part(&text);
        if code.contains("crate::http") || code.contains("tendhost_api") {
            offenders.push(format!("{} reaches the wire layer", path.display()));
        }
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}
