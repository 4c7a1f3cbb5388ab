//! The daemon's own process figures for `/metrics`, read from `/proc` (Linux), under the
//! names every Prometheus client library uses (`process_*`), so stock dashboards work.

use std::fs;

/// One reading; a field is `None` where `/proc` could not tell (another OS, a sandbox).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    /// Unix time the process started.
    pub start_time_seconds: Option<f64>,
    pub threads: Option<u64>,
}

pub fn read() -> ProcessStats {
    // SAFETY: sysconf only reads system constants.
    let (ticks, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let mut s = ProcessStats::default();
    if let Ok(stat) = fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        // `rest` starts at field 3 (state), so field N is f[N - 3].
        let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
        if ticks > 0 {
            if let (Some(utime), Some(stime)) = (num(14), num(15)) {
                s.cpu_seconds = Some((utime + stime) as f64 / ticks as f64);
            }
            if let (Some(start), Some(boot)) = (num(22), boot_time()) {
                s.start_time_seconds = Some(boot as f64 + start as f64 / ticks as f64);
            }
        }
        s.threads = num(20);
        s.virtual_bytes = num(23);
        if page > 0 {
            s.resident_bytes = num(24).map(|pages| pages * page as u64);
        }
    }
    s.open_fds = fs::read_dir("/proc/self/fd").ok().map(|d| d.count() as u64);
    s.max_fds = fs::read_to_string("/proc/self/limits").ok().and_then(|l| {
        l.lines()
            .find(|line| line.starts_with("Max open files"))
            .and_then(|line| line.split_whitespace().nth(3))
            .and_then(|v| v.parse().ok())
    });
    s
}

fn boot_time() -> Option<u64> {
    fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let s = read();
        let rss = s.resident_bytes.expect("rss");
        assert!(
            rss > 1024 * 1024,
            "a test binary uses more than 1 MiB: {rss}"
        );
        assert!(s.open_fds.expect("fds") >= 3);
        let started = s.start_time_seconds.expect("start");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        assert!(started <= now + 1.0 && started > now - 86_400.0 * 365.0);
        assert!(s.cpu_seconds.expect("cpu") >= 0.0);
    }
}
