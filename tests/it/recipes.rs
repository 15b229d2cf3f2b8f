//! `docs/recipes.md` as a user copies it: every ```toml block is a whole config file that the
//! real binary's `tendhost check-config` accepts, and says what it schedules.

use std::process::Command;

use tendhost_tests::daemon::daemon_binary;

const RECIPES: &str = include_str!("../../docs/recipes.md");

/// The ```toml blocks of `text`, in order.
fn toml_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), _) => {
                block.push_str(line);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

#[test]
fn every_recipe_passes_check_config() {
    let blocks = toml_blocks(RECIPES);
    assert_eq!(
        blocks.len(),
        3,
        "nightly security, weekly with a canary, check-only"
    );
    for (block_idx, block) in blocks.iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("recipe-{block_idx}.toml"));
        std::fs::write(&path, block).unwrap();
        let out = Command::new(daemon_binary())
            .args(["check-config", "--config"])
            .arg(&path)
            .env("TENDHOST_DATA_DIR", dir.path().join("data"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "recipe {block_idx}:\n{block}\n{stderr}"
        );
        assert!(stdout.contains(": OK"), "recipe {block_idx}: {stdout}");
        assert!(block.contains("[[schedule]]"), "recipe {block_idx}");
        assert!(
            stdout.contains("  schedules: 1\n"),
            "recipe {block_idx}: {stdout}"
        );
    }
    // A broken schedule in the same shape is refused at its line and column.
    let broken = blocks[0].replace("cron = \"0 3 * * *\"", "cron = \"0 3 * *\"");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.toml");
    std::fs::write(&path, &broken).unwrap();
    let out = Command::new(daemon_binary())
        .args(["check-config", "--config"])
        .arg(&path)
        .env("TENDHOST_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let line = broken
        .lines()
        .position(|l| l.starts_with("cron ="))
        .unwrap()
        + 1;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "broken.toml:{line}:8: cron \"0 3 * *\" must have 5 fields"
        )),
        "{stderr}"
    );
}
