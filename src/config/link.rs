//! Targets that are no namespace (--target-type bess, stdio, qemu): the guest is at the other
//! end of a socket or of stdio, and no TAP is made.

use super::{err, CliError, Target};
use crate::config::cli::{Cli, FramingArg, TargetType};
use crate::transport::framing::Framing;
use std::path::PathBuf;

/// The target --target-type names, or None for a namespace (the default).
pub(super) fn link_target(cli: &Cli, exec_mode: bool) -> Result<Option<Target>, CliError> {
    let kind = cli.target_type.unwrap_or(TargetType::Netns);
    let name = match kind {
        TargetType::Netns => {
            if cli.framing.is_some() {
                return err("--framing needs --target-type=stdio");
            }
            return Ok(None);
        }
        TargetType::Bess => "bess",
        TargetType::Stdio => "stdio",
        TargetType::Qemu => "qemu",
    };
    let conflicts = [
        (exec_mode, "-- COMMAND"),
        (cli.configure, "--configure"),
        (cli.netns_type.is_some(), "--netns-type"),
        (cli.userns_path.is_some(), "--userns-path"),
        (cli.queues > 1, "--queues"),
        (
            cli.framing.is_some() && kind != TargetType::Stdio,
            "--framing",
        ),
    ];
    if let Some((_, option)) = conflicts.iter().find(|(given, _)| *given) {
        return err(format!("{option} conflicts with --target-type={name}"));
    }
    let positionals: Vec<&String> = cli
        .target
        .iter()
        .chain(&cli.tapname)
        .chain(&cli.extra)
        .collect();
    if kind == TargetType::Stdio {
        if !positionals.is_empty() {
            return err("--target-type=stdio takes no PID, PATH or TAPNAME");
        }
        let framing = match cli.framing.unwrap_or(FramingArg::Len16) {
            FramingArg::Slip => Framing::Slip,
            FramingArg::Len16 => Framing::Len16,
        };
        return Ok(Some(Target::Stdio(framing)));
    }
    let path = match positionals[..] {
        [path] => PathBuf::from(path),
        [] => return err(format!("--target-type={name} needs a socket PATH")),
        _ => return err("too many arguments"),
    };
    super::check_socket_path(&path, "socket")?;
    Ok(Some(match kind {
        TargetType::Bess => Target::Bess(path),
        _ => Target::Qemu(path),
    }))
}
