//! --pcap and --debug: what crosses the guest side, as tshark reads it and as stderr shows it.

use crate::common;

use common::*;

#[test]
fn tshark_reads_the_transfer_from_the_pcap_and_debug_summarises_it() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("guest.pcap");
    let mut net = Net::new(&[
        "--pcap",
        pcap.to_str().unwrap(),
        "--debug",
        "--enable-seccomp",
        "--enable-sandbox",
    ]);
    let listener = net.listen("198.51.100.1:0");
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    net.transfer_both_ways(&format!("198.51.100.1:{port}"), 256 << 10, 64 << 10);
    assert!(net.slirp.stop().success());

    let rows = tshark_fields(
        &pcap,
        &format!("tcp.port == {port}"),
        &["ip.src", "ip.dst", "tcp.flags.syn", "tcp.len"],
    );
    let from_guest = rows.iter().filter(|r| r[0] == "10.0.2.100").count();
    let to_guest = rows.iter().filter(|r| r[1] == "10.0.2.100").count();
    assert!(from_guest > 0 && to_guest > 0, "both directions: {rows:?}");
    let syns = rows
        .iter()
        .filter(|r| r[2] == "1" || r[2] == "True")
        .count();
    assert_eq!(syns, 2, "SYN and SYN-ACK: {rows:?}");
    let bytes = |src: &str| -> usize {
        rows.iter()
            .filter(|r| r[0] == src)
            .map(|r| r[3].parse::<usize>().unwrap_or(0))
            .sum()
    };
    assert_eq!(bytes("198.51.100.1"), 256 << 10, "the download, whole");
    assert_eq!(bytes("10.0.2.100"), 64 << 10, "the upload, whole");

    let stderr = net.slirp.stderr();
    assert!(
        stderr.contains("guest > TCP 10.0.2.100:")
            && stderr.contains(&format!("> 198.51.100.1:{port} [S] ")),
        "the guest's SYN in the debug output"
    );
    assert!(stderr.contains(&format!("guest < TCP 198.51.100.1:{port} > 10.0.2.100:")));
    assert!(stderr.contains("ARP who-has 10.0.2.2 tell 10.0.2.100"));
}
