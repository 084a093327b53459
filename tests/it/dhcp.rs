//! The DHCPv4 server on the gateway, as a real client (busybox udhcpc) sees it.

use crate::common;

use common::*;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;

/// Runs busybox udhcpc on the guest's tap0 (which slirp-ns did not configure) and returns what
/// its script was told, or `None` if it got no lease. With `release`, the lease is given back
/// when udhcpc exits.
fn udhcpc(guest: &Guest, dir: &std::path::Path, release: bool) -> Option<HashMap<String, String>> {
    let script = dir.join("script");
    let report = dir.join("report");
    let _ = std::fs::remove_file(&report);
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n[ \"$1\" = bound ] && env > {}\nexit 0\n",
            report.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut args = vec![
        "udhcpc", "-i", "tap0", "-f", "-q", "-n", "-t", "4", "-T", "1", "-O", "mtu", "-O",
        "search", "-O", "hostname", "-s",
    ];
    let script = script.to_str().unwrap().to_string();
    args.push(&script);
    if release {
        args.push("-R");
    }
    let out = guest.run("busybox", &args);
    if !out.status.success() {
        return None;
    }
    let text = std::fs::read_to_string(&report).ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn unconfigured_guest(hs: &HostSim, args: &[&str]) -> (Guest, Slirp) {
    let guest = hs.guest();
    let pid = guest.pid.to_string();
    let mut all = args.to_vec();
    all.extend_from_slice(&[&pid, "tap0"]);
    let slirp = Slirp::start(hs, &all);
    guest.ip("link set tap0 up");
    (guest, slirp)
}

#[test]
fn udhcpc_gets_the_first_address_and_every_option() {
    require_namespace_support();
    let hs = HostSim::new();
    let (guest, mut slirp) = unconfigured_guest(
        &hs,
        &[
            "-m",
            "1400",
            "--hostname",
            "guest-1",
            "--dns-search",
            "corp.example,lab.example",
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let lease = udhcpc(&guest, dir.path(), true).expect("a lease");
    let expect = [
        ("ip", "10.0.2.15"),
        ("subnet", "255.255.255.0"),
        ("router", "10.0.2.2"),
        ("dns", "10.0.2.3"),
        ("serverid", "10.0.2.2"),
        ("mtu", "1400"),
        ("lease", "86400"),
        ("hostname", "guest-1"),
        ("search", "corp.example lab.example"),
    ];
    for (key, value) in expect {
        assert_eq!(
            lease.get(key).map(|v| v.trim()),
            Some(value),
            "{key} in {lease:?}"
        );
    }
    // Released on exit: the next request gets the same first address again.
    let again = udhcpc(&guest, dir.path(), false).expect("a lease again");
    assert_eq!(again.get("ip").map(String::as_str), Some("10.0.2.15"));
    // With that address configured, the guest is on the network.
    guest.ip("addr add 10.0.2.15/24 dev tap0");
    assert!(guest.ping("10.0.2.2"));
    assert!(slirp.stop().success());
}

#[test]
fn disable_dhcp_leaves_udhcpc_without_a_lease() {
    require_namespace_support();
    let hs = HostSim::new();
    let (guest, mut slirp) = unconfigured_guest(&hs, &["--disable-dhcp"]);
    let dir = tempfile::tempdir().unwrap();
    assert!(udhcpc(&guest, dir.path(), false).is_none());
    assert!(slirp.stop().success());
}
