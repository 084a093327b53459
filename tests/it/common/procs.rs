//! What /proc says of processes: which run, their CPU time, their status fields.

use std::time::Duration;

/// The processes whose arguments (`argv`, in order) `matches` takes, with those arguments.
pub fn processes(matches: impl Fn(&[String]) -> bool) -> Vec<(u32, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if matches(&args) {
            found.push((pid, args));
        }
    }
    found
}

/// Processes with `marker` as one of their arguments (to find strays).
pub fn processes_with_arg(marker: &str) -> Vec<u32> {
    processes(|args| args.iter().any(|a| a == marker))
        .into_iter()
        .map(|(pid, _)| pid)
        .collect()
}

/// The helper slirp-ns (process `pid`) keeps in the guest's namespace (for spliced forwards).
pub fn helper_of(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap();
    children
        .split_whitespace()
        .next()
        .expect("a helper process")
        .parse()
        .unwrap()
}

/// User plus system CPU time of a process so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Checks process `pid` stays nearly idle (under 5% of a CPU) for two seconds: nothing spins.
pub fn assert_idle(pid: u32, when: &str) {
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(pid) - before;
    assert!(
        used <= 10,
        "{when}: {used} ticks of CPU in 2 s; something spins"
    );
}

/// A field of /proc/PID/status (`NoNewPrivs`, `CapEff`, `Uid`...), without its name.
pub fn status_field(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}
