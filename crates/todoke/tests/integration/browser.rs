//! The pages in a real browser: runs the Playwright tests of `tests/browser/` (Debian's headless
//! Chromium driven by playwright-core) against the binary this build produced.
//!
//! Outside CI, a machine without Chromium or `npm ci` skips with a notice; in CI (`CI=true`) a
//! missing prerequisite fails, so an install step missing from `.ci/run` cannot hide.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

#[test]
fn pages_work_in_headless_chromium() {
    let root = workspace_root();
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let missing: Vec<&str> = [
        (!Path::new(&chromium).exists()).then_some("chromium (apt-get install chromium fonts-ipaexfont-gothic)"),
        (!root.join("node_modules/playwright-core").exists()).then_some("playwright-core (npm ci)"),
        Command::new("node")
            .arg("--version")
            .output()
            .is_err()
            .then_some("node"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "browser tests cannot run in CI, missing: {missing:?}"
        );
        eprintln!("browser tests skipped, missing: {missing:?}");
        return;
    }
    let out = Command::new("node")
        .args(["--test", "tests/browser/"])
        .current_dir(&root)
        .env("TODOKE_BIN", env!("CARGO_BIN_EXE_todoke"))
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser tests failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("# fail 0") && !report.contains("# pass 0"), "{report}");
}
