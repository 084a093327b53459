//! Arbitrary bytes as an API socket request: the parser must never panic; a forward it
//! accepts has a guest port; an error reply is one JSON object; whether a request is complete
//! never depends on anything but its bytes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use slirp_ns::fuzzing::{api_error_reply, api_request_is_complete, parse_api_request, ApiRequest};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let complete = api_request_is_complete(data);
    assert_eq!(complete, api_request_is_complete(data));
    match parse_api_request(data, Ipv4Addr::new(10, 0, 2, 100)) {
        Ok(ApiRequest::AddHostFwd(spec)) => {
            assert!(complete, "a parsed request was whole");
            assert_ne!(spec.guest_port, 0);
        }
        Ok(_) => assert!(complete),
        Err(error) => {
            let reply = api_error_reply(&error);
            let value: serde_json::Value = serde_json::from_str(&reply).expect("JSON reply");
            assert!(value["error"]["desc"].is_string(), "{reply}");
        }
    }
});
