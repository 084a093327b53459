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

/// Like [`recv_results`] for one descriptor, without waiting: `None` when nothing is there
/// yet.
pub fn try_recv_result(sock: &OwnedFd) -> Option<Result<OwnedFd, String>> {
    receive(sock, MsgFlags::MSG_DONTWAIT).map(|result| {
        result.and_then(|fds| fds.into_iter().next().ok_or_else(|| "no descriptor".into()))
    })
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
    let text = String::from_utf8_lossy(&buf[..len]).into_owned();
    Some(match (len, received) {
        (0, _) => Err("the namespace helper exited without an answer".into()),
        (_, fds) if !fds.is_empty() && text.as_bytes() == OK => Ok(fds),
        _ => Err(text),
    })
}
