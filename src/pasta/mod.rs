//! pasta - slirp-ns started as `pasta`: pasta's command line, defaults and start-up, on the
//! same engine. podman 5 and 6 network rootless containers only through a program named
//! `pasta`, and rootlesskit has a pasta driver; both work with this unchanged.
//!
//! What differs from slirp4netns's personality:
//! - the namespace's interface copies the host's: the default route's interface name, its
//!   addresses, prefix and gateway, MTU 65520 (pasta's network model, see
//!   [`crate::engine::HostNetwork`]);
//! - ports are given as pasta's specifications (`-t`, `-u`), each bound on IPv4 and IPv6;
//! - start-up ends with the process in the background: once everything is set up (the
//!   interface configured, every port bound) the process podman started exits 0, and the one
//!   that runs on has its output on /dev/null. A failure before that is one line on stderr and
//!   exit 1;
//! - it exits when the namespace's file (or process) goes away.

mod auto;
mod cli;
mod daemon;
mod host;
mod ports;
mod settings;
pub mod start;
pub mod user;

pub use auto::{forward_all, AutoPorts};
pub use settings::PastaRun;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

/// Whether the program was started under pasta's name.
pub fn invoked_as_pasta(argv0: Option<&OsString>) -> bool {
    argv0
        .map(std::path::Path::new)
        .and_then(|path| path.file_name())
        .is_some_and(|name| name == "pasta")
}

/// The first line is what `podman info` shows; rootlesskit only checks the exit status.
fn version_text() -> String {
    format!(
        "pasta {} (slirp-ns)\nslirp-ns: a user-mode network stack; pasta's command line\n",
        env!("CARGO_PKG_VERSION")
    )
}

/// Takes pasta's command line: what to run, or the exit status when there is nothing to run
/// (help, version, a bad command line, or the caller's side of going into the background).
pub fn prepare(args: Vec<OsString>) -> Result<(crate::config::Config, PastaRun), ExitCode> {
    let cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(line) => {
            eprintln!("{line}");
            return Err(ExitCode::FAILURE);
        }
    };
    if cli.help {
        let _ = write!(std::io::stdout(), "{}", cli::help());
        return Err(ExitCode::SUCCESS);
    }
    if cli.version {
        print!("{}", version_text());
        return Err(ExitCode::SUCCESS);
    }
    let level = if cli.debug || cli.trace {
        "debug"
    } else if cli.quiet {
        "error"
    } else {
        "warn"
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .init();
    let foreground = cli.foreground;
    let (mut cfg, mut pasta) = settings::config(cli).map_err(|e| {
        eprintln!("pasta: {e}");
        ExitCode::FAILURE
    })?;
    let is_exec = matches!(cfg.target, crate::config::Target::Exec(_));
    if !foreground && !is_exec {
        match daemon::fork_into_background() {
            Ok(daemon::Side::Parent(code)) => return Err(code),
            Ok(daemon::Side::Child(ready)) => cfg.ready_fd = Some(ready),
            Err(e) => {
                eprintln!("pasta: {e}");
                return Err(ExitCode::FAILURE);
            }
        }
    } else {
        pasta.background = None;
    }
    Ok((cfg, pasta))
}
