//! The read-only TFTP server on the gateway, as curl fetches from it; nothing outside its
//! directory can be read.

use crate::common;

use common::*;

/// `curl ARGS` in the guest: (success, what it wrote to stdout).
fn curl(guest: &Guest, args: &[&str]) -> (bool, Vec<u8>) {
    let out = guest.run("curl", args);
    (out.status.success(), out.stdout)
}

#[test]
fn curl_fetches_over_tftp_and_cannot_escape_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tftp");
    std::fs::create_dir_all(root.join("boot")).unwrap();
    let kernel = pattern(300 << 10, 7);
    std::fs::write(root.join("boot/kernel.bin"), &kernel).unwrap();
    std::fs::write(dir.path().join("secret"), "outside").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret"), root.join("escape")).unwrap();
    std::os::unix::fs::symlink("boot/kernel.bin", root.join("inside")).unwrap();
    let root_arg = root.to_str().unwrap().to_string();
    let net = Net::new(&[
        "--tftp-path",
        &root_arg,
        "--bootfile",
        "boot/kernel.bin",
        "--enable-sandbox",
        "--enable-seccomp",
    ]);

    let url = "tftp://10.0.2.2/boot/kernel.bin";
    let (ok, got) = curl(&net.guest, &["-s", "--max-time", "20", url]);
    assert!(ok && got == kernel, "default blocks: {} bytes", got.len());
    let (ok, got) = curl(
        &net.guest,
        &["-s", "--max-time", "20", "--tftp-blksize", "1400", url],
    );
    assert!(ok && got == kernel, "1400-byte blocks: {} bytes", got.len());
    let (ok, got) = curl(
        &net.guest,
        &["-s", "--max-time", "20", "tftp://10.0.2.2/inside"],
    );
    assert!(ok && got == kernel, "a symlink inside the directory");

    for refused in [
        "tftp://10.0.2.2/../secret",
        "tftp://10.0.2.2/escape",
        "tftp://10.0.2.2//etc/passwd",
        "tftp://10.0.2.2/missing",
    ] {
        let (ok, got) = curl(
            &net.guest,
            &["-s", "--path-as-is", "--max-time", "10", refused],
        );
        assert!(!ok && got.is_empty(), "{refused} refused");
    }
}
