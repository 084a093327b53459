//! tftp - a read-only TFTP server on the gateway (RFC 1350, with the blksize and tsize options
//! of RFC 2347-2349), serving `--tftp-path DIR` for guests that boot over the network. Replies
//! come from port 69. No request may reach outside DIR: absolute names, `..` and symlinks
//! leading out are refused (the name is resolved and must stay under DIR's real path). At most
//! MAX_SESSIONS transfers at once; a block unacknowledged for a second is sent again, five
//! times at most.

use crate::engine::{Core, Cx, DropReason, GuestPacket, TxQueue};
use smoltcp::wire::EthernetAddress;
use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

pub const PORT: u16 = 69;
const MAX_SESSIONS: usize = 16;
const RETRANSMIT: Duration = Duration::from_secs(1);
const MAX_RETRIES: u8 = 5;
const DEFAULT_BLOCK: usize = 512;
/// RFC 2348's largest block.
const MAX_BLOCK: usize = 65464;
/// IPv4 and UDP headers, and the TFTP DATA header.
const OVERHEAD: usize = 20 + 8 + 4;

const RRQ: u16 = 1;
const WRQ: u16 = 2;
const DATA: u16 = 3;
const ACK: u16 = 4;
const ERROR: u16 = 5;
const OACK: u16 = 6;

const NOT_FOUND: u16 = 1;
const ACCESS_VIOLATION: u16 = 2;
const ILLEGAL_OPERATION: u16 = 4;

/// System calls of transfers (for --enable-seccomp): opening, sizing and reading files.
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_openat,
    libc::SYS_statx,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_readlink,
    libc::SYS_getcwd,
    libc::SYS_pread64,
    libc::SYS_close,
];

struct Session {
    guest: SocketAddr,
    mac: EthernetAddress,
    file: File,
    block_size: usize,
    /// The block sent and not yet acknowledged, counted from 1 without wrapping (0: the OACK);
    /// on the wire its number is this modulo 65536, as most servers do for large files.
    index: u64,
    /// The option acknowledgement, kept to be sent again.
    oack: Vec<u8>,
    /// The last block was sent (shorter than block_size).
    last: bool,
    sent_at: Instant,
    retries: u8,
}

#[derive(Default)]
pub struct Server {
    /// DIR's real path; None: no server.
    root: Option<PathBuf>,
    sessions: Vec<Session>,
}

impl Server {
    pub fn new(root: Option<&Path>) -> Server {
        Server {
            root: root.and_then(|r| std::fs::canonicalize(r).ok()),
            sessions: Vec::new(),
        }
    }

    /// When a block is due to be sent again.
    pub fn poll_at(&self) -> Option<Instant> {
        self.sessions.iter().map(|s| s.sent_at + RETRANSMIT).min()
    }
}

/// Whether `packet` is for the TFTP server.
pub(in crate::engine) fn is_tftp(core: &Core, packet: &GuestPacket) -> bool {
    core.tftp.root.is_some()
        && packet.dst == IpAddr::V4(core.cx.cfg.net.gateway())
        && packet.udp_dst_port() == Some(PORT)
}

/// The file `name` names under `root`, or the TFTP error to answer.
fn resolve(root: &Path, name: &str) -> Result<PathBuf, u16> {
    let relative = Path::new(name);
    let plain = relative
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if name.is_empty() || !plain {
        return Err(ACCESS_VIOLATION);
    }
    let path = std::fs::canonicalize(root.join(relative)).map_err(|_| NOT_FOUND)?;
    if !path.starts_with(root) || !path.is_file() {
        // A symlink leading out, or not a regular file.
        return Err(ACCESS_VIOLATION);
    }
    Ok(path)
}

/// The NUL-terminated strings of a request.
fn strings(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

pub(in crate::engine) fn handle(
    core: &mut Core,
    now: Instant,
    packet: &GuestPacket,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let (repr, udp) = packet.parse_udp()?;
    let guest = SocketAddr::new(packet.src, repr.src_port);
    let message = udp.payload();
    let [op0, op1, ref body @ ..] = *message else {
        return Err(DropReason::Malformed);
    };
    match u16::from_be_bytes([op0, op1]) {
        RRQ => read_request(core, now, packet.mac, guest, body, tx),
        ACK => {
            let [b0, b1, ..] = *body else {
                return Err(DropReason::Malformed);
            };
            acknowledged(core, now, guest, u16::from_be_bytes([b0, b1]), tx)
        }
        ERROR => {
            core.tftp.sessions.retain(|s| s.guest != guest);
            Ok(())
        }
        WRQ => send_error(
            &mut core.cx,
            packet.mac,
            guest,
            ACCESS_VIOLATION,
            "read-only",
            tx,
        ),
        _ => send_error(
            &mut core.cx,
            packet.mac,
            guest,
            ILLEGAL_OPERATION,
            "bad opcode",
            tx,
        ),
    }
}

fn read_request(
    core: &mut Core,
    now: Instant,
    mac: EthernetAddress,
    guest: SocketAddr,
    body: &[u8],
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let fields = strings(body);
    let (Some(name), Some(_mode)) = (fields.first(), fields.get(1)) else {
        return Err(DropReason::Malformed);
    };
    core.tftp.sessions.retain(|s| s.guest != guest);
    if core.tftp.sessions.len() >= MAX_SESSIONS {
        return send_error(&mut core.cx, mac, guest, 0, "too many transfers", tx);
    }
    let Some(root) = core.tftp.root.clone() else {
        return Err(DropReason::Unsupported);
    };
    let file = match resolve(&root, name).and_then(|p| File::open(p).map_err(|_| NOT_FOUND)) {
        Ok(file) => file,
        Err(code) => return send_error(&mut core.cx, mac, guest, code, "cannot read that", tx),
    };
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    // Options (RFC 2347): name and value pairs after the mode.
    let mut oack = Vec::new();
    let mut block_size = DEFAULT_BLOCK;
    let mtu_block = (core.cx.cfg.mtu as usize).saturating_sub(OVERHEAD).max(8);
    for pair in fields[2..].chunks(2) {
        let [option, value] = pair else { break };
        match option.to_ascii_lowercase().as_str() {
            "blksize" => {
                if let Ok(asked) = value.parse::<usize>() {
                    block_size = asked.clamp(8, MAX_BLOCK.min(mtu_block));
                    oack.push(("blksize", block_size.to_string()));
                }
            }
            "tsize" => oack.push(("tsize", size.to_string())),
            _ => {}
        }
    }
    let mut reply = Vec::new();
    if !oack.is_empty() {
        reply.extend_from_slice(&OACK.to_be_bytes());
        for (option, value) in oack {
            reply.extend_from_slice(option.as_bytes());
            reply.push(0);
            reply.extend_from_slice(value.as_bytes());
            reply.push(0);
        }
    }
    let with_options = !reply.is_empty();
    core.tftp.sessions.push(Session {
        guest,
        mac,
        file,
        block_size,
        index: u64::from(!with_options),
        oack: reply.clone(),
        last: false,
        sent_at: now,
        retries: 0,
    });
    let session = core.tftp.sessions.len() - 1;
    if with_options {
        send(&mut core.cx, mac, guest, reply, tx)
    } else {
        send_block(core, now, session, tx)
    }
}

fn acknowledged(
    core: &mut Core,
    now: Instant,
    guest: SocketAddr,
    block: u16,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let Some(index) = core.tftp.sessions.iter().position(|s| s.guest == guest) else {
        return Err(DropReason::NotForUs);
    };
    let session = &mut core.tftp.sessions[index];
    if block != session.index as u16 {
        // A duplicate ACK of an earlier block: the one outstanding is resent by the timer.
        return Ok(());
    }
    if session.last {
        core.tftp.sessions.remove(index);
        return Ok(());
    }
    session.index += 1;
    session.retries = 0;
    send_block(core, now, index, tx)
}

/// Sends the block the session is at.
fn send_block(
    core: &mut Core,
    now: Instant,
    index: usize,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let session = &mut core.tftp.sessions[index];
    let mut reply = vec![0u8; 4 + session.block_size];
    reply[..2].copy_from_slice(&DATA.to_be_bytes());
    reply[2..4].copy_from_slice(&(session.index as u16).to_be_bytes());
    let offset = (session.index - 1) * session.block_size as u64;
    let mut filled = 0;
    while filled < session.block_size {
        match session
            .file
            .read_at(&mut reply[4 + filled..], offset + filled as u64)
        {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    reply.truncate(4 + filled);
    session.last = filled < session.block_size;
    session.sent_at = now;
    let (mac, guest) = (session.mac, session.guest);
    send(&mut core.cx, mac, guest, reply, tx)
}

/// Resends what is outstanding where an ACK is overdue; ends transfers that stay silent.
pub(in crate::engine) fn handle_timers(core: &mut Core, now: Instant, tx: &mut TxQueue) {
    let mut index = 0;
    while index < core.tftp.sessions.len() {
        let session = &mut core.tftp.sessions[index];
        if session.sent_at + RETRANSMIT > now {
            index += 1;
            continue;
        }
        session.retries += 1;
        if session.retries > MAX_RETRIES {
            core.tftp.sessions.remove(index);
            continue;
        }
        let result = if session.index == 0 {
            session.sent_at = now;
            let (mac, guest, oack) = (session.mac, session.guest, session.oack.clone());
            send(&mut core.cx, mac, guest, oack, tx)
        } else {
            send_block(core, now, index, tx)
        };
        if let Err(reason) = result {
            core.cx.counters.count_drop(reason);
        }
        index += 1;
    }
}

fn send_error(
    cx: &mut Cx,
    mac: EthernetAddress,
    guest: SocketAddr,
    code: u16,
    text: &str,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let mut reply = ERROR.to_be_bytes().to_vec();
    reply.extend_from_slice(&code.to_be_bytes());
    reply.extend_from_slice(text.as_bytes());
    reply.push(0);
    send(cx, mac, guest, reply, tx)
}

fn send(
    cx: &mut Cx,
    mac: EthernetAddress,
    guest: SocketAddr,
    message: Vec<u8>,
    tx: &mut TxQueue,
) -> Result<(), DropReason> {
    let mut datagram = vec![0u8; crate::engine::wire::frames::UDP_HEADER];
    datagram.extend_from_slice(&message);
    let from = SocketAddr::new(IpAddr::V4(cx.cfg.net.gateway()), PORT);
    cx.emit_udp(tx, mac, from, guest, &mut datagram)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_only_to_files_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/file"), "x").unwrap();
        std::fs::write(dir.path().join("outside"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("out")).unwrap();
        std::os::unix::fs::symlink("sub/file", root.join("in")).unwrap();
        assert_eq!(resolve(&root, "sub/file"), Ok(root.join("sub/file")));
        assert_eq!(resolve(&root, "./sub/file"), Ok(root.join("sub/file")));
        assert_eq!(resolve(&root, "in"), Ok(root.join("sub/file")));
        for (name, error) in [
            ("../outside", ACCESS_VIOLATION),
            ("sub/../../outside", ACCESS_VIOLATION),
            ("/etc/passwd", ACCESS_VIOLATION),
            ("", ACCESS_VIOLATION),
            ("out", ACCESS_VIOLATION),
            ("sub", ACCESS_VIOLATION),
            ("missing", NOT_FOUND),
        ] {
            assert_eq!(resolve(&root, name), Err(error), "{name:?}");
        }
    }
}
