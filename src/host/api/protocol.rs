//! The JSON API of the API socket, as slirp4netns speaks it: requests parsed, replies formatted.
//! No I/O here.
//!
//! | request | reply |
//! |---|---|
//! | `{"execute":"add_hostfwd","arguments":{...}}` | `{"return":{"id":N}}` |
//! | `{"execute":"list_hostfwd"}` | `{"entries":[...]}` (no "return" wrapper) |
//! | `{"execute":"remove_hostfwd","arguments":{"id":N}}` | `{"return":{}}` |
//! | `{"execute":"get_info"}` (slirp-ns only) | `{"return":{...}}` |
//!
//! Errors are `{"error":{"desc":"bad request: ..."}}` with slirp4netns's texts. Replies are
//! compact JSON with no trailing newline.

use serde_json::{json, Map, Value};
use std::net::{IpAddr, Ipv4Addr};

/// Requests of this size or more are refused, as slirp4netns refuses them.
pub const MAX_REQUEST: usize = 4096;

pub use crate::engine::flows::fwd::{ForwardEntry, ForwardProto, ForwardSpec, InvalidForward};

/// A request, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `add_hostfwd`: the forward asked for.
    AddHostFwd(ForwardSpec),
    /// `list_hostfwd`.
    ListHostFwd,
    /// `remove_hostfwd`: the forward's id.
    RemoveHostFwd(u64),
    /// `get_info`.
    GetInfo,
}

/// The `desc` of an error reply, without the "bad request: " prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub &'static str);

impl BadRequest {
    pub const TOO_LARGE: BadRequest = BadRequest("too large message");
    pub const CANNOT_PARSE: BadRequest = BadRequest("cannot parse JSON");
    pub const NOT_AN_OBJECT: BadRequest = BadRequest("json_object() failed");
    pub const ADD_FAILED: BadRequest = BadRequest("add_hostfwd: slirp_add_hostfwd failed");
    pub const TOO_MANY_FORWARDS: BadRequest = BadRequest("add_hostfwd: too many forwards");
    /// An id that is not a forward's (never was, or removed already).
    pub const REMOVE_UNKNOWN: BadRequest = BadRequest("remove_hostfwd: bad arguments.id");
}

fn arguments(root: &Map<String, Value>) -> Option<&Map<String, Value>> {
    root.get("arguments").and_then(Value::as_object)
}

/// An address argument: absent or "" means `default`.
fn address<T: std::str::FromStr + Copy>(
    args: &Map<String, Value>,
    name: &str,
    default: T,
) -> Option<T> {
    match args.get(name) {
        None => Some(default),
        Some(Value::String(s)) if s.is_empty() => Some(default),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    }
}

/// A port argument: a JSON number holding an integer in `min..=65535`.
fn port(args: &Map<String, Value>, name: &str, min: u16) -> Option<u16> {
    let n = args.get(name)?.as_f64()?;
    if n.fract() != 0.0 || n < f64::from(min) || n > 65535.0 {
        return None;
    }
    Some(n as u16)
}

fn parse_add(
    root: &Map<String, Value>,
    default_guest: Ipv4Addr,
) -> Result<ForwardSpec, BadRequest> {
    let no_args = Map::new();
    let args = arguments(root).unwrap_or(&no_args);
    let proto = match args.get("proto").and_then(Value::as_str) {
        Some("tcp") => ForwardProto::Tcp,
        Some("udp") => ForwardProto::Udp,
        _ => return Err(BadRequest("add_hostfwd: bad arguments.proto")),
    };
    let host_addr = address(args, "host_addr", IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        .ok_or(BadRequest("add_hostfwd: bad arguments.host_addr"))?;
    let host_port =
        port(args, "host_port", 0).ok_or(BadRequest("add_hostfwd: bad arguments.host_port"))?;
    let guest_addr = address(args, "guest_addr", IpAddr::V4(default_guest))
        .ok_or(BadRequest("add_hostfwd: bad arguments.guest_addr"))?;
    let guest_port =
        port(args, "guest_port", 0).ok_or(BadRequest("add_hostfwd: bad arguments.guest_port"))?;
    let spec = ForwardSpec {
        proto,
        host_addr,
        host_port,
        guest_addr,
        guest_port,
        device: None,
    };
    // The guest is a unicast host (loopback, multicast and the like cannot be it) and has a port.
    spec.validate().map_err(|why| match why {
        InvalidForward::GuestAddr => BadRequest("add_hostfwd: bad arguments.guest_addr"),
        InvalidForward::GuestPort => BadRequest("add_hostfwd: bad arguments.guest_port"),
    })?;
    Ok(spec)
}

/// The first JSON value in `bytes`, whatever follows it (a second value, NUL bytes), as
/// slirp4netns reads a request; bytes that are not UTF-8 stand for U+FFFD, so that they make
/// the value's strings wrong rather than the request unreadable.
fn first_value(bytes: &[u8]) -> Option<Value> {
    let text = String::from_utf8_lossy(bytes);
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .next()?
        .ok()
}

/// Parses one request. `default_guest` is the guest address used when none is given.
pub fn parse(bytes: &[u8], default_guest: Ipv4Addr) -> Result<Request, BadRequest> {
    if bytes.len() >= MAX_REQUEST {
        return Err(BadRequest::TOO_LARGE);
    }
    let value = first_value(bytes).ok_or(BadRequest::CANNOT_PARSE)?;
    let root = value.as_object().ok_or(BadRequest::NOT_AN_OBJECT)?;
    let execute = root
        .get("execute")
        .and_then(Value::as_str)
        .ok_or(BadRequest("no execute found"))?;
    match execute {
        "add_hostfwd" => parse_add(root, default_guest).map(Request::AddHostFwd),
        "list_hostfwd" => Ok(Request::ListHostFwd),
        "remove_hostfwd" => {
            let id = arguments(root)
                .and_then(|args| args.get("id"))
                .and_then(Value::as_f64)
                .filter(|n| n.fract() == 0.0 && *n >= 0.0 && *n <= u32::MAX as f64)
                .ok_or(BadRequest("remove_hostfwd: bad arguments.id"))?;
            Ok(Request::RemoveHostFwd(id as u64))
        }
        "get_info" => Ok(Request::GetInfo),
        _ => Err(BadRequest("unknown execute")),
    }
}

/// Whether `bytes` already hold a whole JSON value, so a client that neither closes its side
/// nor sends a newline gets its answer all the same.
pub fn is_complete(bytes: &[u8]) -> bool {
    first_value(bytes).is_some()
}

/// `{"error":{"desc":"bad request: ..."}}`, as slirp4netns words it.
pub fn error_reply(error: &BadRequest) -> String {
    json!({"error": {"desc": format!("bad request: {}", error.0)}}).to_string()
}

pub fn add_reply(id: u64) -> String {
    json!({"return": {"id": id}}).to_string()
}

pub fn remove_reply() -> String {
    json!({"return": {}}).to_string()
}

pub fn list_reply(entries: &[ForwardEntry]) -> String {
    let entries: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "proto": e.spec.proto.name(),
                "host_addr": e.spec.host_addr.to_string(),
                "host_port": e.spec.host_port,
                "guest_addr": e.spec.guest_addr.to_string(),
                "guest_port": e.spec.guest_port,
            })
        })
        .collect();
    json!({ "entries": entries }).to_string()
}

/// `get_info`'s reply: `info` becomes the "return" object.
pub fn info_reply(info: Value) -> String {
    json!({ "return": info }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUEST_V4: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 100);
    const GUEST: IpAddr = IpAddr::V4(GUEST_V4);

    fn add(args: &str) -> Result<Request, BadRequest> {
        parse(
            format!(r#"{{"execute":"add_hostfwd","arguments":{args}}}"#).as_bytes(),
            GUEST_V4,
        )
    }

    #[test]
    fn add_with_defaults_as_podman_sends_it() {
        let req = add(
            r#"{"proto":"tcp","host_addr":"","host_port":8080,"guest_addr":"","guest_port":80}"#,
        )
        .unwrap();
        assert_eq!(
            req,
            Request::AddHostFwd(ForwardSpec {
                proto: ForwardProto::Tcp,
                host_addr: "0.0.0.0".parse().unwrap(),
                host_port: 8080,
                guest_addr: GUEST,
                guest_port: 80,
                device: None,
            })
        );
        let absent = add(r#"{"proto":"udp","host_port":53,"guest_port":5353}"#).unwrap();
        let Request::AddHostFwd(spec) = absent else {
            panic!()
        };
        assert_eq!(
            (spec.proto, spec.host_addr.to_string(), spec.guest_addr),
            (ForwardProto::Udp, "0.0.0.0".into(), GUEST)
        );
    }

    #[test]
    fn add_takes_ipv6_host_addresses_and_port_zero() {
        let Request::AddHostFwd(spec) =
            add(r#"{"proto":"tcp","host_addr":"::1","host_port":0,"guest_port":80}"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(spec.host_addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(spec.host_port, 0);
    }

    #[test]
    fn add_argument_errors_name_the_argument() {
        let cases = [
            (r#"{"proto":"sctp","host_port":1,"guest_port":1}"#, "proto"),
            (r#"{"host_port":1,"guest_port":1}"#, "proto"),
            (
                r#"{"proto":"tcp","host_addr":"nope","host_port":1,"guest_port":1}"#,
                "host_addr",
            ),
            (
                r#"{"proto":"tcp","host_addr":7,"host_port":1,"guest_port":1}"#,
                "host_addr",
            ),
            (
                r#"{"proto":"tcp","host_port":"80","guest_port":1}"#,
                "host_port",
            ),
            (
                r#"{"proto":"tcp","host_port":70000,"guest_port":1}"#,
                "host_port",
            ),
            (
                r#"{"proto":"tcp","host_port":1.5,"guest_port":1}"#,
                "host_port",
            ),
            (r#"{"proto":"tcp","guest_port":1}"#, "host_port"),
            (
                r#"{"proto":"tcp","host_port":1,"guest_addr":"::1","guest_port":1}"#,
                "guest_addr",
            ),
            (
                r#"{"proto":"tcp","host_port":1,"guest_addr":"224.0.0.1","guest_port":1}"#,
                "guest_addr",
            ),
            (
                r#"{"proto":"tcp","host_port":1,"guest_port":0}"#,
                "guest_port",
            ),
            (r#"{"proto":"tcp","host_port":1}"#, "guest_port"),
        ];
        for (args, name) in cases {
            let err = add(args).expect_err(args);
            assert_eq!(
                err.0,
                format!("add_hostfwd: bad arguments.{name}"),
                "{args}"
            );
        }
    }

    #[test]
    fn request_level_errors() {
        let parse = |s: &str| parse(s.as_bytes(), GUEST_V4).unwrap_err().0;
        assert_eq!(parse("{"), "cannot parse JSON");
        assert_eq!(parse("[1]"), "json_object() failed");
        assert_eq!(parse("7"), "json_object() failed");
        assert_eq!(parse(r#"{"arguments":{}}"#), "no execute found");
        let not_utf8 = super::parse(b"{\"execute\":\"list\xff\"}", GUEST_V4);
        assert_eq!(not_utf8.unwrap_err().0, "unknown execute");
        assert_eq!(parse(r#"{"execute":"reboot"}"#), "unknown execute");
        assert_eq!(
            parse(r#"{"execute":"remove_hostfwd"}"#),
            "remove_hostfwd: bad arguments.id"
        );
        assert_eq!(
            parse(r#"{"execute":"remove_hostfwd","arguments":{"id":"1"}}"#),
            "remove_hostfwd: bad arguments.id"
        );
        let big = format!(
            r#"{{"execute":"list_hostfwd","pad":"{}"}}"#,
            "x".repeat(4096)
        );
        assert_eq!(parse(&big), "too large message");
    }

    #[test]
    fn the_first_value_is_the_request_whatever_follows() {
        for request in [
            &b"{\"execute\":\"list_hostfwd\"}{\"execute\":\"get_info\"}"[..],
            &b"{\"execute\":\"list_hostfwd\"}\0\0\0"[..],
            &b"{\"execute\":\"list_hostfwd\"} garbage"[..],
        ] {
            assert_eq!(parse(request, GUEST_V4), Ok(Request::ListHostFwd));
            assert!(is_complete(request));
        }
    }

    #[test]
    fn newline_and_whitespace_are_fine() {
        assert_eq!(
            parse(b"{\"execute\":\"list_hostfwd\"}\n", GUEST_V4),
            Ok(Request::ListHostFwd)
        );
        assert!(is_complete(b" {\"execute\":\"list_hostfwd\"} \n"));
        assert!(!is_complete(b"{\"execute\":\"list_"));
    }

    #[test]
    fn replies_are_byte_exact() {
        assert_eq!(add_reply(3), r#"{"return":{"id":3}}"#);
        assert_eq!(remove_reply(), r#"{"return":{}}"#);
        assert_eq!(
            error_reply(&BadRequest("unknown execute")),
            r#"{"error":{"desc":"bad request: unknown execute"}}"#
        );
        let entry = ForwardEntry {
            id: 1,
            spec: ForwardSpec {
                proto: ForwardProto::Tcp,
                host_addr: "0.0.0.0".parse().unwrap(),
                host_port: 8080,
                guest_addr: GUEST,
                guest_port: 80,
                device: None,
            },
        };
        assert_eq!(
            list_reply(&[entry]),
            r#"{"entries":[{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":8080,"guest_addr":"10.0.2.100","guest_port":80}]}"#
        );
        assert_eq!(list_reply(&[]), r#"{"entries":[]}"#);
    }
}
