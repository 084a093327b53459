//! The shell completions and the man page in the repository are generated from the clap
//! definitions; this test keeps them in step. Regenerate with
//! `SLIRP_NS_REGENERATE=1 cargo test --test it generated_files`.

use clap_complete::{generate, Shell};
use slirp_ns::cli::Cli;
use std::path::Path;

fn check(path: &str, generated: Vec<u8>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("SLIRP_NS_REGENERATE").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date: run SLIRP_NS_REGENERATE=1 cargo test --test it generated_files",
        path.display()
    );
}

#[test]
fn completions_are_current() {
    for (shell, file) in [
        (Shell::Bash, "completions/slirp-ns.bash"),
        (Shell::Zsh, "completions/_slirp-ns"),
        (Shell::Fish, "completions/slirp-ns.fish"),
    ] {
        let mut out = Vec::new();
        generate(shell, &mut Cli::command_definition(), "slirp-ns", &mut out);
        check(file, out);
    }
}

#[test]
fn man_page_is_current() {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command_definition())
        .render(&mut out)
        .unwrap();
    check("packaging/slirp-ns.1", out);
}
