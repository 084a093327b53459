//! One message over a SOCK_SEQPACKET pair: a status text, and on success one descriptor (or a
//! few: the queues of a multi-queue TAP).

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

const OK: &[u8] = b"ok";
const MAX_MESSAGE: usize = 4096;
/// Most descriptors one message carries.
pub const MAX_FDS: usize = crate::sys::MAX_PASSED_FDS;

/// Sends `Ok(fd)` as "ok" with the descriptor attached, or `Err(text)` as the text.
pub fn send_result(sock: &OwnedFd, result: Result<&OwnedFd, &str>) -> nix::Result<()> {
    send_results(sock, result.map(std::slice::from_ref))
}

/// Like [`send_result`] with up to [`MAX_FDS`] descriptors.
pub fn send_results(sock: &OwnedFd, result: Result<&[OwnedFd], &str>) -> nix::Result<()> {
    match result {
        Ok(fds) => {
            let fds: Vec<RawFd> = fds.iter().take(MAX_FDS).map(AsRawFd::as_raw_fd).collect();
            let cmsg = [ControlMessage::ScmRights(&fds)];
            sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(OK)],
                &cmsg,
                MsgFlags::empty(),
                None,
            )?;
        }
        Err(text) => {
            let text = &text.as_bytes()[..text.len().min(MAX_MESSAGE)];
            let text = if text == OK { b"error" as &[u8] } else { text };
            sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(text)],
                &[],
                MsgFlags::empty(),
                None,
            )?;
        }
    }
    Ok(())
}

/// Receives what [`send_results`] sent. An empty read means the sender died first.
pub fn recv_results(sock: &OwnedFd) -> Result<Vec<OwnedFd>, String> {
    receive(sock, MsgFlags::empty()).unwrap_or_else(|| Err("no answer".into()))
}

/// What [`try_recv_result`] found.
#[derive(Debug)]
pub enum Reply {
    /// Nothing yet.
    Nothing,
    /// An answer: the descriptor, or the error text the sender sent instead.
    Answer(Result<OwnedFd, String>),
    /// The sender is gone (end of file) or the socket failed: no answer will ever come.
    Gone(String),
}

/// Like [`recv_results`] for one descriptor, without waiting.
pub fn try_recv_result(sock: &OwnedFd) -> Reply {
    let mut buf = vec![0u8; MAX_MESSAGE];
    match crate::sys::recv_with_fds(sock.as_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Reply::Nothing,
        Err(e) => Reply::Gone(format!("cannot receive from the namespace helper: {e}")),
        Ok((0, _)) => Reply::Gone("the namespace helper exited".into()),
        Ok((len, fds)) => Reply::Answer(
            answer(&buf[..len], fds)
                .and_then(|fds| fds.into_iter().next().ok_or_else(|| "no descriptor".into())),
        ),
    }
}

fn answer(text: &[u8], fds: Vec<OwnedFd>) -> Result<Vec<OwnedFd>, String> {
    if !fds.is_empty() && text == OK {
        Ok(fds)
    } else {
        Err(String::from_utf8_lossy(text).into_owned())
    }
}

fn receive(sock: &OwnedFd, flags: MsgFlags) -> Option<Result<Vec<OwnedFd>, String>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let (len, received) = match crate::sys::recv_with_fds(sock.as_fd(), &mut buf, flags) {
        Ok(received) => received,
        Err(nix::errno::Errno::EAGAIN) => return None,
        Err(e) => {
            return Some(Err(format!(
                "cannot receive from the namespace helper: {e}"
            )))
        }
    };
    Some(match len {
        0 => Err("the namespace helper exited without an answer".into()),
        _ => answer(&buf[..len], received),
    })
}
