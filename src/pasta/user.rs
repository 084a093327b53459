//! --runas: the user and group pasta runs as once set up. Started as root in the initial user
//! namespace, it runs as nobody unless told otherwise (as pasta does); elsewhere it keeps its
//! user. Names are looked up in /etc/passwd and /etc/group (the static binary has no NSS).

use nix::errno::Errno;
use nix::unistd::{getegid, geteuid, setgroups, setresgid, setresuid, Gid, Uid};

/// nobody's numbers when /etc/passwd does not name it.
const NOBODY: u32 = 65534;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// Chosen because the process is root, not asked for.
    pub is_nobody_instead_of_root: bool,
}

impl RunAs {
    /// `UID[:GID]`, each a number or a name; a user without a group takes its own group (a
    /// number: the same number).
    pub fn parse(text: &str) -> Result<RunAs, String> {
        let bad = || format!("Invalid --runas option: {text}");
        let (user, group) = match text.split_once(':') {
            Some((user, group)) => (user, Some(group)),
            None => (text, None),
        };
        let (uid, own_gid) = match user.parse::<u32>() {
            Ok(uid) => (uid, uid),
            Err(_) => user_entry(&read("/etc/passwd"), user).ok_or_else(bad)?,
        };
        let gid = match group {
            None => own_gid,
            Some(group) => match group.parse::<u32>() {
                Ok(gid) => gid,
                Err(_) => group_entry(&read("/etc/group"), group).ok_or_else(bad)?,
            },
        };
        Ok(RunAs {
            uid,
            gid,
            is_nobody_instead_of_root: false,
        })
    }

    /// nobody, when this process is root in the initial user namespace.
    pub fn instead_of_root() -> Option<RunAs> {
        if !geteuid().is_root() || !is_initial_user_namespace(&read("/proc/self/uid_map")) {
            return None;
        }
        let (uid, gid) = user_entry(&read("/etc/passwd"), "nobody").unwrap_or((NOBODY, NOBODY));
        Some(RunAs {
            uid,
            gid,
            is_nobody_instead_of_root: true,
        })
    }

    /// Becomes this user and group, with no supplementary groups. The permitted capabilities
    /// are kept across the change (the caller trims them next) and made effective again.
    pub fn switch(self) -> Result<(), String> {
        let (uid, gid) = (Uid::from_raw(self.uid), Gid::from_raw(self.gid));
        if uid == geteuid() && gid == getegid() {
            return Ok(());
        }
        let fail =
            |what: &str, e: Errno| format!("cannot run as {}:{}: {what}: {e}", self.uid, self.gid);
        nix::sys::prctl::set_keepcaps(true).map_err(|e| fail("keepcaps", e))?;
        // Without CAP_SETGID (a user namespace that denies it) there are no groups to shed.
        match setgroups(&[]) {
            Ok(()) | Err(Errno::EPERM) => {}
            Err(e) => return Err(fail("setgroups", e)),
        }
        setresgid(gid, gid, gid).map_err(|e| fail("setresgid", e))?;
        setresuid(uid, uid, uid).map_err(|e| fail("setresuid", e))?;
        let _ = nix::sys::prctl::set_keepcaps(false);
        let permitted = caps::read(None, caps::CapSet::Permitted)
            .map_err(|e| format!("cannot read capabilities: {e}"))?;
        caps::set(None, caps::CapSet::Effective, &permitted)
            .map_err(|e| format!("cannot set capabilities: {e}"))
    }
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `name`'s uid and primary gid in a passwd file.
fn user_entry(passwd: &str, name: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// `name`'s gid in a group file.
fn group_entry(group: &str, name: &str) -> Option<u32> {
    group.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 3 && f[0] == name).then(|| f[2].parse().ok())?
    })
}

/// Whether a uid_map maps every uid onto itself (the initial user namespace's).
fn is_initial_user_namespace(uid_map: &str) -> bool {
    let fields: Vec<&str> = uid_map.split_whitespace().collect();
    fields == ["0", "0", "4294967295"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_their_defaults() {
        let r = RunAs::parse("1000").unwrap();
        assert_eq!((r.uid, r.gid), (1000, 1000));
        let r = RunAs::parse("1000:100").unwrap();
        assert_eq!((r.uid, r.gid), (1000, 100));
        assert!(RunAs::parse("").is_err());
        assert!(RunAs::parse("1000:").is_err());
        assert_eq!(
            RunAs::parse("no-such-user-here").unwrap_err(),
            "Invalid --runas option: no-such-user-here"
        );
    }

    #[test]
    fn names_from_the_files() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
        assert_eq!(user_entry(passwd, "nobody"), Some((65534, 65534)));
        assert_eq!(user_entry(passwd, "nobod"), None);
        assert_eq!(user_entry("broken:x:y:0\n", "broken"), None);
        let group = "root:x:0:\nnogroup:x:65534:\n";
        assert_eq!(group_entry(group, "nogroup"), Some(65534));
        assert_eq!(group_entry(group, "wheel"), None);
    }

    #[test]
    fn the_initial_user_namespace() {
        assert!(is_initial_user_namespace(
            "         0          0 4294967295\n"
        ));
        assert!(!is_initial_user_namespace(
            "         0       1000          1\n"
        ));
        assert!(!is_initial_user_namespace(""));
    }
}
