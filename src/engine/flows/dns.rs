//! dns - which resolvers the DNS address (network+3) relays to.
//!
//! `--dns-server` fixes them; otherwise they are the `nameserver` lines of the host's
//! /etc/resolv.conf, read again when the file changes (checked at most once a second, when a
//! new DNS flow starts). The relaying itself is ordinary UDP and TCP translation. The file's
//! `search` domains are what DHCPv6 tells the guest to search.
//!
//! A resolver that does not answer is left for the next, as the guest's own resolver library
//! would: over UDP, when it refuses (ICMP port unreachable, or a REFUSED or SERVFAIL answer)
//! or when the guest sends the same query again unanswered (its own timeout), the flow moves
//! to the next server and the query goes there at once. The server that answered last is the
//! one new flows start with, unless it has left a query unanswered for [`SILENT_AFTER`]: a
//! guest resolver that asks again from a new port then gets the next one.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

/// System calls re-reading the resolver configuration (for --enable-seccomp).
pub(crate) const SYSCALLS: &[crate::sys::Syscall] = &[
    libc::SYS_openat,
    libc::SYS_statx,
    libc::SYS_newfstatat,
    libc::SYS_fstat,
    libc::SYS_lseek,
    libc::SYS_read,
    libc::SYS_close,
];

const RECHECK_INTERVAL: Duration = Duration::from_secs(1);
/// A resolver with a query unanswered this long is passed over by new flows.
pub const SILENT_AFTER: Duration = Duration::from_secs(2);

pub struct Resolver {
    fixed: Vec<IpAddr>,
    fixed_search: Vec<String>,
    path: PathBuf,
    from_file: Vec<IpAddr>,
    search: Vec<String>,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
    /// The server that answered last: where new flows go while it is still configured.
    preferred: Option<IpAddr>,
    /// A server with a query unanswered, and since when (the oldest such query).
    waiting_since: Option<(IpAddr, Instant)>,
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
            preferred: None,
            waiting_since: None,
        }
    }

    /// The server a new flow relays to: the one that answered last, if still configured, else
    /// the first.
    pub fn current(&mut self, now: Instant) -> Option<IpAddr> {
        let preferred = self.preferred;
        let servers = self.servers(now);
        let current = preferred
            .filter(|p| servers.contains(p))
            .or_else(|| servers.first().copied())?;
        match self.waiting_since {
            Some((silent, since)) if silent == current && now - since >= SILENT_AFTER => {
                self.waiting_since = None;
                Some(self.next_after(now, current).unwrap_or(current))
            }
            _ => Some(current),
        }
    }

    /// A query went to `server`.
    pub fn query_sent(&mut self, server: IpAddr, now: Instant) {
        if self
            .waiting_since
            .is_none_or(|(waiting, _)| waiting != server)
        {
            self.waiting_since = Some((server, now));
        }
    }

    /// The server after `failed` (in order, wrapping), which new flows now start with; `None`
    /// when there is no other.
    pub fn next_after(&mut self, now: Instant, failed: IpAddr) -> Option<IpAddr> {
        let servers = self.servers(now);
        let at = servers.iter().position(|s| *s == failed);
        let next = match at {
            Some(at) => servers[(at + 1) % servers.len()],
            None => *servers.first()?,
        };
        if next == failed {
            return None;
        }
        self.preferred = Some(next);
        Some(next)
    }

    /// `server` answered: new flows go to it.
    pub fn answered(&mut self, server: IpAddr) {
        self.preferred = Some(server);
        if self
            .waiting_since
            .is_some_and(|(waiting, _)| waiting == server)
        {
            self.waiting_since = None;
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

/// Most bytes of a query kept to send again to the next server (DNS over UDP rarely exceeds
/// 512; EDNS asks for at most a little over 1232).
const MAX_KEPT_QUERY: usize = 1500;

/// A guest's DNS flow over UDP: which server it relays to, and its last query.
pub(crate) struct Relay {
    pub server: IpAddr,
    query: Vec<u8>,
    answered: bool,
    /// Servers the last query went to.
    tries: usize,
}

/// What to do with a query or an answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Pass it on.
    Pass,
    /// Move to the next server (and send the kept query there).
    FailOver,
}

/// The id of a DNS message.
fn message_id(message: &[u8]) -> Option<[u8; 2]> {
    message.get(..2).map(|id| [id[0], id[1]])
}

impl Relay {
    pub fn new(server: IpAddr) -> Self {
        Relay {
            server,
            query: Vec::new(),
            answered: true,
            tries: 0,
        }
    }

    /// A query from the guest. The same one again while it has no answer means the server
    /// does not answer: fail over first.
    pub fn on_query(&mut self, query: &[u8]) -> Step {
        let again = !self.answered
            && message_id(query).is_some()
            && message_id(query) == message_id(&self.query);
        self.query.clear();
        if query.len() <= MAX_KEPT_QUERY {
            self.query.extend_from_slice(query);
        }
        self.answered = false;
        if again {
            Step::FailOver
        } else {
            self.tries = 1;
            Step::Pass
        }
    }

    /// An answer from the server: a refusal (REFUSED, SERVFAIL) is tried elsewhere while
    /// there are servers the query has not been to (`servers` in all).
    pub fn on_answer(&mut self, answer: &[u8], servers: usize) -> Step {
        const SERVFAIL: u8 = 2;
        const REFUSED: u8 = 5;
        let rcode = answer.get(3).map(|flags| flags & 0x0f);
        if matches!(rcode, Some(SERVFAIL | REFUSED)) && self.on_refused(servers) == Step::FailOver {
            return Step::FailOver;
        }
        self.answered = true;
        Step::Pass
    }

    /// The server refused (with ICMP, or in its answer): try the next one if the kept query
    /// has not been to every server yet.
    pub fn on_refused(&self, servers: usize) -> Step {
        if self.tries < servers && !self.query.is_empty() {
            Step::FailOver
        } else {
            Step::Pass
        }
    }

    /// Now relaying to `server`; returns the kept query, to send there.
    pub fn moved_to(&mut self, server: IpAddr) -> &[u8] {
        self.server = server;
        self.tries += 1;
        &self.query
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
    fn failover_goes_round_and_the_answering_server_is_remembered() {
        let servers: Vec<IpAddr> = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        let mut resolver = Resolver::new(servers.clone(), vec![], "/nonexistent".into());
        let now = Instant::now();
        assert_eq!(resolver.current(now), Some(servers[0]));
        assert_eq!(resolver.next_after(now, servers[2]), Some(servers[0]));
        assert_eq!(resolver.next_after(now, servers[0]), Some(servers[1]));
        assert_eq!(resolver.current(now), Some(servers[1]));
        resolver.answered(servers[2]);
        assert_eq!(resolver.current(now), Some(servers[2]));
        let mut alone = Resolver::new(vec![servers[0]], vec![], "/nonexistent".into());
        assert_eq!(alone.next_after(now, servers[0]), None);
    }

    #[test]
    fn a_relay_fails_over_on_the_same_query_again_and_on_refusals_until_all_were_asked() {
        let mut relay = Relay::new("192.0.2.1".parse().unwrap());
        let query = [0x12, 0x34, 1, 0, 0, 1];
        assert_eq!(relay.on_query(&query), Step::Pass);
        assert_eq!(
            relay.on_query(&query),
            Step::FailOver,
            "asked again, unanswered"
        );
        let other = [0x56, 0x78, 1, 0, 0, 1];
        assert_eq!(relay.on_query(&other), Step::Pass);
        let refused = [0x56, 0x78, 0x81, 0x85];
        assert_eq!(relay.on_answer(&refused, 2), Step::FailOver);
        assert_eq!(relay.moved_to("192.0.2.2".parse().unwrap()), &other);
        assert_eq!(
            relay.on_answer(&refused, 2),
            Step::Pass,
            "every server said so"
        );
        assert_eq!(relay.on_query(&other), Step::Pass, "answered: a new query");
    }

    #[test]
    fn fixed_servers_win() {
        let fixed = vec!["198.51.100.53".parse().unwrap()];
        let mut resolver = Resolver::new(fixed.clone(), vec![], "/nonexistent".into());
        assert_eq!(resolver.servers(Instant::now()), fixed.as_slice());
    }
}
