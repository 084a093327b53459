//! The API socket, as podman, rootlesskit and scripts use it (what forwards then do:
//! forwards.rs).

use crate::common;

use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::time::Duration;

#[test]
fn replies_and_errors_are_slirp4netns_exact() {
    let net = Net::new(&[]);
    let sock = &net.sock;
    let (p1, p2) = (net.free_port(), net.free_port());
    assert_eq!(add_tcp(sock, "", p1, 80), r#"{"return":{"id":1}}"#);
    assert_eq!(
        request(
            sock,
            &format!(
                r#"{{"execute":"add_hostfwd","arguments":{{"proto":"tcp","host_port":{p2},"guest_port":8080}}}}"#
            )
        ),
        r#"{"return":{"id":2}}"#
    );
    assert_eq!(
        request(sock, r#"{"execute":"list_hostfwd"}"#),
        format!(
            r#"{{"entries":[{{"id":1,"proto":"tcp","host_addr":"0.0.0.0","host_port":{p1},"guest_addr":"10.0.2.100","guest_port":80}},{{"id":2,"proto":"tcp","host_addr":"0.0.0.0","host_port":{p2},"guest_addr":"10.0.2.100","guest_port":8080}}]}}"#
        )
    );
    let remove = r#"{"execute":"remove_hostfwd","arguments":{"id":1}}"#;
    assert_eq!(request(sock, remove), r#"{"return":{}}"#);
    assert_eq!(
        request(sock, remove),
        r#"{"error":{"desc":"bad request: remove_hostfwd: bad arguments.id"}}"#
    );
    // Ids are never reused.
    assert_eq!(add_tcp(sock, "", p1, 80), r#"{"return":{"id":3}}"#);

    let error = |desc: &str| format!(r#"{{"error":{{"desc":"bad request: {desc}"}}}}"#);
    let cases = [
        ("{", "cannot parse JSON"),
        (r#"{"arguments":{}}"#, "no execute found"),
        (r#"{"execute":"format_disk"}"#, "unknown execute"),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"sctp","host_port":1,"guest_port":1}}"#,
            "add_hostfwd: bad arguments.proto",
        ),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_addr":"x","host_port":1,"guest_port":1}}"#,
            "add_hostfwd: bad arguments.host_addr",
        ),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":"1","guest_port":1}}"#,
            "add_hostfwd: bad arguments.host_port",
        ),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":1,"guest_addr":"y","guest_port":1}}"#,
            "add_hostfwd: bad arguments.guest_addr",
        ),
        (
            r#"{"execute":"add_hostfwd","arguments":{"proto":"tcp","host_port":1,"guest_port":-1}}"#,
            "add_hostfwd: bad arguments.guest_port",
        ),
        (
            r#"{"execute":"remove_hostfwd","arguments":{}}"#,
            "remove_hostfwd: bad arguments.id",
        ),
    ];
    for (json, desc) in cases {
        assert_eq!(request(sock, json), error(desc), "{json}");
    }
    let large = format!(
        r#"{{"execute":"list_hostfwd","pad":"{}"}}"#,
        "x".repeat(5000)
    );
    assert_eq!(request(sock, &large), error("too large message"));

    // A port in use on the host.
    let busy = in_netns(&net.hs.netns_path(), || {
        TcpListener::bind("0.0.0.0:0").unwrap()
    });
    let busy_port = busy.local_addr().unwrap().port();
    assert_eq!(
        add_tcp(sock, "", busy_port, 80),
        error("add_hostfwd: slirp_add_hostfwd failed")
    );
}

#[test]
fn clients_may_or_may_not_close_their_side() {
    let net = Net::new(&[]);
    for ending in [Ending::Shutdown, Ending::Nothing, Ending::Newline] {
        assert_eq!(
            request_with(&net.sock, r#"{"execute":"list_hostfwd"}"#, ending),
            r#"{"entries":[]}"#
        );
    }
    // A request in two pieces, without closing.
    let mut conn = UnixStream::connect(&net.sock).unwrap();
    conn.set_read_timeout(Some(TIMEOUT)).unwrap();
    conn.write_all(br#"{"execute":"list_"#).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    conn.write_all(br#"hostfwd"}"#).unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, r#"{"entries":[]}"#);
}

/// A request far beyond the limit gets its error reply whatever the client does after
/// sending (shut down its side, wait, or send a newline), and even when it is larger than
/// the socket's buffers; slirp-ns serves the next client as before.
#[test]
fn an_oversized_request_still_gets_its_error_reply() {
    let net = Net::new(&[]);
    let error = r#"{"error":{"desc":"bad request: too large message"}}"#;
    for size in [100 << 10, 600 << 10] {
        let large = format!(
            r#"{{"execute":"list_hostfwd","pad":"{}"}}"#,
            "x".repeat(size)
        );
        for ending in [Ending::Shutdown, Ending::Nothing, Ending::Newline] {
            assert_eq!(
                request_with(&net.sock, &large, ending),
                error,
                "{size} bytes"
            );
        }
    }
    assert_eq!(
        request(&net.sock, r#"{"execute":"list_hostfwd"}"#),
        r#"{"entries":[]}"#
    );
}

/// Replies that scripts written against slirp4netns 1.2 see, byte for byte: what follows the
/// first JSON value is ignored, a value that is not an object and an `execute` that is not
/// UTF-8 get slirp4netns's texts, and an unknown id is a bad argument.
#[test]
fn odd_requests_get_slirp4netns_replies() {
    let net = Net::new(&[]);
    let error = |desc: &str| format!(r#"{{"error":{{"desc":"bad request: {desc}"}}}}"#);
    let raw = |bytes: &[u8]| {
        let mut conn = UnixStream::connect(&net.sock).unwrap();
        conn.set_read_timeout(Some(TIMEOUT)).unwrap();
        conn.write_all(bytes).unwrap();
        conn.shutdown(std::net::Shutdown::Write).unwrap();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).unwrap();
        reply
    };
    let empty = r#"{"entries":[]}"#;
    assert_eq!(
        raw(br#"{"execute":"list_hostfwd"}{"execute":"get_info"}"#),
        empty
    );
    assert_eq!(raw(b"{\"execute\":\"list_hostfwd\"}\0\0\0"), empty);
    assert_eq!(
        raw(br#"[{"execute":"list_hostfwd"}]"#),
        error("json_object() failed")
    );
    assert_eq!(raw(b"{\"execute\":\"list\xff\"}"), error("unknown execute"));
    assert_eq!(
        raw(br#"{"execute":"remove_hostfwd","arguments":{"id":42}}"#),
        error("remove_hostfwd: bad arguments.id")
    );
}
