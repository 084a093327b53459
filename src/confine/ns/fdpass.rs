//! One message over a SOCK_SEQPACKET pair: a status text, and on success one descriptor (or a
//! few: the queues of a multi-queue TAP), or none where only the status counts.

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
            let rights = [ControlMessage::ScmRights(&fds)];
            // No descriptor, no control message: the "ok" of a status.
            let cmsg: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
            sendmsg::<()>(
                sock.as_raw_fd(),
                &[IoSlice::new(OK)],
                cmsg,
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

/// Sends that something went well ("ok", no descriptor) or the text of why not.
pub fn send_status(sock: &OwnedFd, result: Result<(), &str>) -> nix::Result<()> {
    send_results(sock, result.map(|()| &[] as &[OwnedFd]))
}

/// Waits for what [`send_status`] sent.
pub fn recv_status(sock: &OwnedFd) -> Result<(), String> {
    match receive(sock, MsgFlags::empty()) {
        Reply::Answer(answer) => answer.map(drop),
        Reply::Gone(why) => Err(why),
        Reply::Nothing => Err("no answer".into()),
    }
}

/// Receives what [`send_results`] sent. An empty read means the sender died first.
pub fn recv_results(sock: &OwnedFd) -> Result<Vec<OwnedFd>, String> {
    match receive(sock, MsgFlags::empty()) {
        Reply::Answer(Ok(fds)) if fds.is_empty() => Err("no descriptor".into()),
        Reply::Answer(answer) => answer,
        Reply::Gone(why) => Err(why),
        Reply::Nothing => Err("no answer".into()),
    }
}

/// What a receive found.
#[derive(Debug)]
pub enum Reply<T = OwnedFd> {
    /// Nothing yet.
    Nothing,
    /// An answer: the descriptor(s), or the error text the sender sent instead.
    Answer(Result<T, String>),
    /// The sender is gone (end of file) or the socket failed: no answer will ever come.
    Gone(String),
}

/// Like [`recv_results`] for one descriptor, without waiting.
pub fn try_recv_result(sock: &OwnedFd) -> Reply {
    match receive(sock, MsgFlags::MSG_DONTWAIT) {
        Reply::Answer(answer) => Reply::Answer(
            answer.and_then(|fds| fds.into_iter().next().ok_or_else(|| "no descriptor".into())),
        ),
        Reply::Gone(why) => Reply::Gone(why),
        Reply::Nothing => Reply::Nothing,
    }
}

fn receive(sock: &OwnedFd, flags: MsgFlags) -> Reply<Vec<OwnedFd>> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    match crate::sys::recv_with_fds(sock.as_fd(), &mut buf, flags) {
        Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => Reply::Nothing,
        Err(e) => Reply::Gone(format!("cannot receive from the namespace helper: {e}")),
        Ok((0, _)) => Reply::Gone("the namespace helper exited without an answer".into()),
        Ok((len, fds)) if &buf[..len] == OK => Reply::Answer(Ok(fds)),
        Ok((len, _)) => Reply::Answer(Err(String::from_utf8_lossy(&buf[..len]).into_owned())),
    }
}
