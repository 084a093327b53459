//! dns - which resolvers the DNS address (network+3) relays to.
//!
//! `--dns-server` fixes them; otherwise they are the `nameserver` lines of the host's
//! /etc/resolv.conf, read again when the file changes (checked at most once a second, when a
//! new DNS flow starts). The relaying itself is ordinary UDP and TCP translation. The file's
//! `search` domains are what DHCPv6 tells the guest to search.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// System calls re-reading the resolver configuration (for --enable-seccomp).
pub(crate) const SYSCALLS: &[crate::seccomp::Syscall] = &[
    libc::SYS_openat,
    libc::SYS_statx,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_lseek,
    libc::SYS_read,
    libc::SYS_close,
];

const RECHECK_INTERVAL: Duration = Duration::from_secs(1);

pub struct Resolver {
    fixed: Vec<IpAddr>,
    fixed_search: Vec<String>,
    path: PathBuf,
    from_file: Vec<IpAddr>,
    search: Vec<String>,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
}

impl Resolver {
    /// Relays to `fixed` (or, if empty, the resolvers of `path`) and tells guests the search
    /// domains `fixed_search` (or, if empty, those of `path`).
    pub fn new(fixed: Vec<IpAddr>, fixed_search: Vec<String>, path: PathBuf) -> Self {
        Resolver {
            fixed,
            fixed_search,
            path,
            from_file: Vec::new(),
            search: Vec::new(),
            modified: None,
            checked: None,
        }
    }

    /// The resolvers to use now.
    pub fn servers(&mut self, now: Instant) -> &[IpAddr] {
        if !self.fixed.is_empty() {
            return &self.fixed;
        }
        self.refresh(now);
        &self.from_file
    }

    /// The search domains: those given, or the host's.
    pub fn search_domains(&mut self, now: Instant) -> &[String] {
        if !self.fixed_search.is_empty() {
            return &self.fixed_search;
        }
        self.refresh(now);
        &self.search
    }

    fn refresh(&mut self, now: Instant) {
        if self
            .checked
            .is_none_or(|at| now.duration_since(at) >= RECHECK_INTERVAL)
        {
            self.checked = Some(now);
            let modified = std::fs::metadata(&self.path)
                .and_then(|m| m.modified())
                .ok();
            if modified != self.modified || modified.is_none() {
                self.modified = modified;
                let text = std::fs::read_to_string(&self.path).unwrap_or_default();
                self.from_file = parse_resolv_conf(&text);
                self.search = parse_search(&text);
                log::debug!(
                    "resolvers from {}: {:?}, search {:?}",
                    self.path.display(),
                    self.from_file,
                    self.search
                );
            }
        }
    }
}

/// The `nameserver` addresses of a resolv.conf, in order (a scope suffix like `%eth0` is
/// dropped; it cannot be used from another namespace anyway).
pub fn parse_resolv_conf(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            if words.next()? != "nameserver" {
                return None;
            }
            let addr = words.next()?;
            addr.split('%').next()?.parse().ok()
        })
        .collect()
}

/// The domains of the last `search` (or `domain`) line of a resolv.conf, as the resolver
/// library takes them.
pub fn parse_search(text: &str) -> Vec<String> {
    let mut search = Vec::new();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if matches!(words.next(), Some("search" | "domain")) {
            search = words
                .filter(|d| d.len() < 254 && *d != ".")
                .map(|d| d.trim_end_matches('.').to_owned())
                .collect();
        }
    }
    search
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nameserver_lines() {
        let text = "# generated\nsearch example.org\nnameserver 127.0.0.53\n\
                    nameserver   192.0.2.53 \nnameserver fe80::1%eth0\nnameserver bogus\n\
                    options edns0\n;nameserver 198.51.100.1\n";
        let servers: Vec<String> = parse_resolv_conf(text)
            .iter()
            .map(|a| a.to_string())
            .collect();
        assert_eq!(servers, ["127.0.0.53", "192.0.2.53", "fe80::1"]);
        assert_eq!(parse_search(text), ["example.org"]);
        assert_eq!(
            parse_search("domain a.example\nsearch b.example. c.example\n"),
            ["b.example", "c.example"]
        );
    }

    #[test]
    fn rereads_the_file_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("resolv.conf");
        std::fs::write(&path, "nameserver 192.0.2.1\n").unwrap();
        let mut resolver = Resolver::new(vec![], vec![], path.clone());
        let t0 = Instant::now();
        assert_eq!(
            resolver.servers(t0),
            ["192.0.2.1".parse::<IpAddr>().unwrap()]
        );
        std::fs::write(&path, "nameserver 192.0.2.2\n").unwrap();
        // Make sure the modification time differs even on coarse-grained file systems.
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(later)
            .unwrap();
        assert_eq!(
            resolver.servers(t0 + RECHECK_INTERVAL),
            ["192.0.2.2".parse::<IpAddr>().unwrap()]
        );
    }

    #[test]
    fn fixed_servers_win() {
        let fixed = vec!["198.51.100.53".parse().unwrap()];
        let mut resolver = Resolver::new(fixed.clone(), vec![], "/nonexistent".into());
        assert_eq!(resolver.servers(Instant::now()), fixed.as_slice());
    }
}
