//! Two stacks back to back, entirely in memory: the frames of one are the other's guest. A
//! program connects through the first to a virtual web server on the second, and a virtual UDP
//! echo answers a datagram sent the same way round.
//!
//! Run: `cargo run --example in_memory`

use slirp_ns::{EngineConfig, Ipv4Network, Stack};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

/// Moves frames between two stacks, polling both, until `done` says so.
pub fn back_to_back(
    a: &mut Stack,
    b: &mut Stack,
    mut done: impl FnMut() -> bool,
) -> io::Result<()> {
    let (mut to_a, mut to_b): (Vec<Vec<u8>>, Vec<Vec<u8>>) = (Vec::new(), Vec::new());
    while !done() {
        // Wait a little only when nothing is in flight.
        let wait = if to_a.is_empty() && to_b.is_empty() {
            Duration::from_millis(1)
        } else {
            Duration::ZERO
        };
        a.poll(Some(wait), &mut |f| to_b.push(f.to_vec()))?;
        b.poll(Some(Duration::ZERO), &mut |f| to_a.push(f.to_vec()))?;
        let frames = std::mem::take(&mut to_a);
        a.input_batch(frames.iter().map(Vec::as_slice), &mut |f| {
            to_b.push(f.to_vec())
        });
        let frames = std::mem::take(&mut to_b);
        b.input_batch(frames.iter().map(Vec::as_slice), &mut |f| {
            to_a.push(f.to_vec())
        });
    }
    Ok(())
}

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = EngineConfig::new(Ipv4Network::default());
    let (mut server_side, mut client_side) = (Stack::new(config.clone())?, Stack::new(config)?);

    // The server side's "guest" is the client side: a virtual server at 10.0.2.100:80 there is
    // what the client side sees as its guest's web server.
    let web: SocketAddr = "10.0.2.100:80".parse()?;
    let listener = server_side.engine_mut().listen(web)?;
    let server = std::thread::spawn(move || -> io::Result<()> {
        let (mut conn, from) = listener.accept()?;
        let mut request = [0u8; 18];
        conn.read_exact(&mut request)?;
        let body = format!("hello, {from}\n");
        write!(
            conn,
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    });

    let mut early = Vec::new();
    let mut stream = client_side.connect(web, &mut |f| early.push(f.to_vec()))?;
    for frame in early {
        server_side.input(&frame, &mut |_| {});
    }
    stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let client = std::thread::spawn(move || -> io::Result<String> {
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response)
    });
    back_to_back(&mut client_side, &mut server_side, || client.is_finished())?;
    let response = client.join().expect("client thread")?;
    server.join().expect("server thread")?;
    print!("{response}");
    let counters = server_side.engine().counters();
    println!(
        "server side: {} frames in, {} out, {} dropped",
        counters.frames_in,
        counters.frames_out,
        counters.dropped()
    );
    Ok(())
}
