//! Small TCP load generators for bench/compare.sh.
//!
//! ```text
//! bench_tcp server ADDR         echo server, one connection at a time (the clients are sequential)
//! bench_tcp crr ADDR SECONDS    sequential connect + 64-byte echo + close; prints conns/s
//! bench_tcp rr ADDR SECONDS     1-byte request/response on one connection; prints mean µs
//! bench_tcp probe ADDR          one echo within a second, or exit 1
//! bench_tcp sink ADDR           accepts connections and keeps them open, doing nothing else
//! bench_tcp hold ADDR N         opens N connections, prints "OPENED FAILED", keeps them open
//!                               until stdin closes
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

fn serve(addr: &str) {
    let listener = TcpListener::bind(addr).expect("bind");
    let mut buf = [0u8; 4096];
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        let _ = conn.set_nodelay(true);
        while let Ok(n) = conn.read(&mut buf) {
            if n == 0 || conn.write_all(&buf[..n]).is_err() {
                break;
            }
        }
    }
}

fn crr(addr: &str, seconds: u64) {
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut count = 0u64;
    let mut buf = [0u8; 64];
    while Instant::now() < until {
        let mut conn = TcpStream::connect(addr).expect("connect");
        conn.set_nodelay(true).unwrap();
        conn.write_all(&[0x5a; 64]).unwrap();
        conn.read_exact(&mut buf).unwrap();
        count += 1;
    }
    println!("{:.0}", count as f64 / start.elapsed().as_secs_f64());
}

fn rr(addr: &str, seconds: u64) {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_nodelay(true).unwrap();
    let until = Instant::now() + Duration::from_secs(seconds);
    let start = Instant::now();
    let mut count = 0u64;
    let mut byte = [0u8; 1];
    while Instant::now() < until {
        conn.write_all(&[1]).unwrap();
        conn.read_exact(&mut byte).unwrap();
        count += 1;
    }
    println!("{:.1}", start.elapsed().as_secs_f64() * 1e6 / count as f64);
}

fn probe(addr: &str) -> bool {
    let Ok(addr) = addr.parse() else { return false };
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
    let mut byte = [0u8; 1];
    conn.write_all(&[1]).is_ok() && conn.read_exact(&mut byte).is_ok()
}

fn sink(addr: &str) {
    let listener = TcpListener::bind(addr).expect("bind");
    let mut held = Vec::new();
    for conn in listener.incoming().flatten() {
        held.push(conn);
    }
}

fn hold(addr: &str, count: usize) {
    let addr = addr.parse().expect("address");
    let (mut held, mut failed) = (Vec::with_capacity(count), 0);
    for _ in 0..count {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
            Ok(conn) => held.push(conn),
            Err(_) => failed += 1,
        }
    }
    println!("{} {failed}", held.len());
    std::io::stdout().flush().unwrap();
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
}

/// Many connections need many descriptors: take the most the hard limit allows.
fn raise_fd_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one struct rlimit, which `limit` is.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().collect();
    let seconds = |i: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(2);
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("server"), Some(addr)) => serve(addr),
        (Some("crr"), Some(addr)) => crr(addr, seconds(3)),
        (Some("rr"), Some(addr)) => rr(addr, seconds(3)),
        (Some("probe"), Some(addr)) => std::process::exit(if probe(addr) { 0 } else { 1 }),
        (Some("sink"), Some(addr)) => sink(addr),
        (Some("hold"), Some(addr)) => hold(
            addr,
            args.get(3).and_then(|n| n.parse().ok()).unwrap_or(10_000),
        ),
        _ => {
            eprintln!("usage: bench_tcp server|crr|rr|probe|sink|hold ADDR [SECONDS|N]");
            std::process::exit(1);
        }
    }
}
