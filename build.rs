//! Records the git commit for `--version` (the "commit:" line scripts parse).

use std::path::Path;
use std::process::Command;

fn main() {
    let head = Path::new(".git/HEAD");
    if head.exists() {
        println!("cargo:rerun-if-changed=.git/HEAD");
        if let Ok(text) = std::fs::read_to_string(head) {
            if let Some(reference) = text.trim().strip_prefix("ref: ") {
                let path = Path::new(".git").join(reference);
                if path.exists() {
                    println!("cargo:rerun-if-changed={}", path.display());
                }
            }
        }
    } else {
        println!("cargo:rerun-if-changed=build.rs");
    }
    let commit = Command::new("git")
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=SLIRP_NS_COMMIT={commit}");
    }
}
