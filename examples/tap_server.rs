//! A stack serving a TAP device — what an emulator embedding slirp-ns does with its guest's
//! frames — with a web server that exists only in this process at 10.0.2.2:80 (the gateway's
//! address, taken over from the host). Everything else the guest sends is NATed onto host
//! sockets as the slirp-ns binary would.
//!
//! Run as root: `cargo run --example tap_server -- tap0`, then in another shell
//! `ip addr add 10.0.2.100/24 dev tap0 && ip link set tap0 up` and
//! `curl --interface tap0 http://10.0.2.2/` (or move tap0 into a namespace first).

use slirp_ns::{EngineConfig, Ipv4Network, Stack};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// Pumps frames between `tap` and `stack` until `stop`: frames read from the TAP go in, frames
/// out are written to it; the stack is polled whenever its descriptor says so.
pub fn drive(stack: &mut Stack, tap: &File, stop: &AtomicBool) -> std::io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let mut frame = vec![0u8; 65536];
    let mut out = tap;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [
            PollFd::new(tap.as_fd(), PollFlags::POLLIN),
            PollFd::new(stack.as_fd(), PollFlags::POLLIN),
        ];
        // The timeout lets `stop` be seen; the stack's own timers are kept by poll below.
        let _ = poll(&mut fds, PollTimeout::from(10u8));
        if fds[0].any().unwrap_or(false) {
            let n = (&*tap).read(&mut frame)?;
            stack.input(&frame[..n], &mut |f| {
                let _ = out.write(f);
            });
        }
        stack.poll(Some(std::time::Duration::ZERO), &mut |f| {
            let _ = out.write(f);
        })?;
    }
    Ok(())
}

/// Opens the TAP device `name` (made if missing), frames without any header.
pub fn open_tap(name: &str) -> std::io::Result<File> {
    let tun = File::options()
        .read(true)
        .write(true)
        .open("/dev/net/tun")?;
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(name.bytes().take(15)) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads a struct ifreq, which `ifr` is, from an open descriptor.
    if unsafe { libc::ioctl(tun.as_raw_fd(), libc::TUNSETIFF, &ifr) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(tun)
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "tap0".into());
    let tap = open_tap(&name)?;
    let mut stack = Stack::new(EngineConfig::new(Ipv4Network::default()))?;
    let web = stack.engine_mut().listen("10.0.2.2:80".parse()?)?;
    std::thread::spawn(move || {
        while let Ok((mut conn, guest)) = web.accept() {
            let body = format!("served from inside the process to {guest}\n");
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    eprintln!("serving {name}; Ctrl-C to stop");
    drive(&mut stack, &tap, &AtomicBool::new(false))?;
    Ok(())
}
