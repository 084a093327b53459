//! What a run as pasta adds to start-up: its files (the PID file, the log file, the watch on
//! the namespace), the `auto` port scanner and the `-U` relay.

use super::PastaRun;
use crate::confine::ns::watch::QuitWatch;
use crate::engine::flows::fwd::ForwardProto;
use crate::host::udp_outward::UdpOutward;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::Duration;

/// How long a `-U` client keeps its host socket without traffic.
const UDP_IDLE: Duration = Duration::from_secs(180);

/// What is opened while the file system is in view and privileges are whole.
#[derive(Default)]
pub struct Files {
    /// Written with our PID once ready (a path that cannot be written fails start-up, not the
    /// running process).
    pub pid_file: Option<File>,
    /// Running in the background: stdio goes to /dev/null once ready, stderr to this log file
    /// when one is given.
    pub background_log: Option<Option<File>>,
    /// The namespace's file or process, whose end ends the run.
    pub quit_watch: Option<QuitWatch>,
}

impl Files {
    pub fn open(pasta: &PastaRun) -> Result<Files, String> {
        let pid_file = pasta
            .pid_file
            .as_deref()
            .map(|path| File::create(path).map_err(|e| format!("PID file {}: {e}", path.display())))
            .transpose()?;
        let background_log = match &pasta.background {
            Some(Some(path)) => Some(Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| format!("log file {}: {e}", path.display()))?,
            )),
            Some(None) => Some(None),
            None => None,
        };
        let quit_watch = pasta
            .quit_when
            .as_ref()
            .map(|when| {
                QuitWatch::new(when).map_err(|e| format!("cannot watch the namespace: {e}"))
            })
            .transpose()?;
        Ok(Files {
            pid_file,
            background_log,
            quit_watch,
        })
    }
}

/// The scanner of `auto` ports, when any are asked for: it reads the namespace's socket tables
/// through a process inside it (`inside_pid`). `guest` holds the guest's own addresses, where
/// the forwards go.
pub fn auto_ports(
    pasta: &PastaRun,
    inside_pid: Option<i32>,
    guest: (IpAddr, Option<IpAddr>),
) -> Result<Option<super::AutoPorts>, String> {
    if pasta.auto.is_empty() && pasta.auto_to_host.is_empty() {
        return Ok(None);
    }
    let Some(pid) = inside_pid else {
        return Err(
            "auto ports need a process in the namespace (not with --no-splice and --netns)".into(),
        );
    };
    Ok(Some(super::AutoPorts::new(
        pasta.auto.clone(),
        pasta.auto_to_host.clone(),
        format!("/proc/{pid}/net").into(),
        guest,
    )))
}

/// The `-U` relay, when asked for: `sockets` are the namespace-side sockets the helper made,
/// in the order of the `-U` ports.
pub fn udp_outward(pasta: &PastaRun, sockets: Vec<OwnedFd>) -> Option<UdpOutward> {
    let auto = pasta
        .auto_to_host
        .iter()
        .any(|spec| spec.proto == ForwardProto::Udp);
    if sockets.is_empty() && !auto {
        return None;
    }
    let sockets = sockets
        .into_iter()
        .zip(&pasta.udp_ns)
        .map(|(fd, &(_, port))| (fd, SocketAddr::from((Ipv4Addr::LOCALHOST, port))))
        .collect();
    Some(UdpOutward::new(sockets, UDP_IDLE))
}
