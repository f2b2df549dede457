//! CPU seconds an assistant spends: this process (Perimeter's model runs in it), the children it
//! waited for (Aider) and the model server (`perimeter serve`, which Aider talks to). Unlike
//! wall-clock seconds, other work sharing the machine barely changes them, so runs made beside a
//! build, or paused, still compare.

use std::path::PathBuf;

/// Reads the CPU time of this process and, when given, of the server process.
pub struct CpuClock {
    server: Option<u32>,
}

impl CpuClock {
    pub fn new(server: Option<u32>) -> CpuClock {
        CpuClock { server }
    }

    /// CPU seconds so far; `None` where `/proc` cannot tell (not Linux).
    pub fn now(&self) -> Option<f64> {
        let own = process_seconds(PathBuf::from("/proc/self/stat"), true)?;
        let server = match self.server {
            Some(pid) => process_seconds(PathBuf::from(format!("/proc/{pid}/stat")), false)?,
            None => 0.0,
        };
        Some(own + server)
    }

    /// CPU seconds since `start` (a reading of `now`).
    pub fn since(&self, start: Option<f64>) -> Option<f64> {
        Some(self.now()? - start?)
    }
}

/// User and system time of a process from its `stat` file; with its waited-for children's when
/// `children` is set (their time is added when they are reaped).
fn process_seconds(stat: PathBuf, children: bool) -> Option<f64> {
    let text = std::fs::read_to_string(stat).ok()?;
    parse_stat(&text, children)
}

fn parse_stat(text: &str, children: bool) -> Option<f64> {
    // The command name (field 2) is in parentheses and may hold spaces: count after the last ')'.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14-17 of proc(5): utime, stime, cutime, cstime; here from field 3 (state) on.
    let ticks = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    let mut total = ticks(14)? + ticks(15)?;
    if children {
        total += ticks(16)? + ticks(17)?;
    }
    // The kernel reports in USER_HZ, which is 100 on every Linux architecture's user ABI.
    Some(total as f64 / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_times_after_a_command_name_with_spaces() {
        let stat = "4242 (perimeter serve) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 50 30 20 20 0 9 0 100 0 0";
        assert_eq!(parse_stat(stat, false), Some(3.0));
        assert_eq!(parse_stat(stat, true), Some(3.5));
        assert_eq!(parse_stat("garbage", true), None);
    }

    #[test]
    fn the_clock_advances_with_work_done() {
        let clock = CpuClock::new(None);
        let start = clock.now().expect("Linux has /proc");
        let began = std::time::Instant::now();
        let mut x = 0u64;
        // Busy until the kernel has counted at least 5 ticks of this process's time.
        while clock.since(Some(start)).unwrap() < 0.05 {
            for i in 0..1_000_000u64 {
                x = x.wrapping_mul(31).wrapping_add(i);
            }
            assert!(began.elapsed().as_secs() < 30, "30 s of work counted as under 0.05 CPU seconds");
        }
        std::hint::black_box(x);
    }
}
