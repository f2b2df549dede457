//! A short measurement of how fast this machine's cores read memory, cached per machine.
//!
//! Decoding a token reads every weight of the model once, so on a CPU the decode speed is
//! bounded by memory read bandwidth (and by how fast the cores dequantize; see
//! `models::speed`). The probe reads a buffer far larger than any cache with one thread per
//! physical core and keeps the best of a few passes (~0.2 s in all). The result is cached in
//! the data folder under the machine's identity (CPU model, cores, RAM), so `perimeter hw`
//! and the Models view measure once per machine, not on every look.

use std::path::Path;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::HardwareProfile;

/// 256 MiB: well past the last-level cache of any laptop or workstation CPU.
const BUFFER_BYTES: usize = 256 << 20;
const PASSES: usize = 4;
const CACHE_FILE: &str = "memory-bandwidth.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Cached {
    machine: String,
    bytes_per_s: u64,
}

/// What identifies a machine for the cache: a new CPU, core count or RAM size measures again.
fn machine_key(hw: &HardwareProfile) -> String {
    format!("{} | {} cores | {} bytes", hw.cpu.model, hw.cpu.logical_cores, hw.ram_total_bytes)
}

/// The memory read bandwidth of this machine in bytes/s: from the cache in `data_dir` when
/// it was measured on this machine, else measured now with `threads` and cached (a cache
/// that cannot be written is not an error: the figure is measured again next time).
pub fn cached_or_measured(hw: &HardwareProfile, data_dir: &Path, threads: usize) -> u64 {
    let path = data_dir.join(CACHE_FILE);
    let key = machine_key(hw);
    let cached = std::fs::read(&path).ok().and_then(|b| serde_json::from_slice::<Cached>(&b).ok());
    if let Some(c) = cached.filter(|c| c.machine == key && c.bytes_per_s > 0) {
        return c.bytes_per_s;
    }
    let bytes_per_s = measure(threads);
    if let Ok(json) = serde_json::to_vec(&Cached { machine: key, bytes_per_s }) {
        let _ = std::fs::create_dir_all(data_dir);
        let _ = crate::paths::write_atomically(&path, &json);
    }
    bytes_per_s
}

/// Measures read bandwidth now: `threads` threads each sum their share of one buffer.
pub fn measure(threads: usize) -> u64 {
    let threads = threads.max(1);
    // Written once, so every page is really mapped before the timed passes.
    let buffer: Vec<u64> = (0..BUFFER_BYTES / 8).map(|i| i as u64).collect();
    let share = buffer.len().div_ceil(threads);
    let mut best = f64::MAX;
    let mut checksum = 0u64;
    for _ in 0..PASSES {
        let start = Instant::now();
        let sums: Vec<u64> = std::thread::scope(|s| {
            let workers: Vec<_> = buffer.chunks(share).map(|part| s.spawn(move || sum(part))).collect();
            workers.into_iter().map(|w| w.join().unwrap_or(0)).collect()
        });
        best = best.min(start.elapsed().as_secs_f64());
        checksum = checksum.wrapping_add(sums.iter().fold(0, |a, b| a.wrapping_add(*b)));
    }
    // The checksum keeps the compiler from dropping the reads.
    std::hint::black_box(checksum);
    (BUFFER_BYTES as f64 / best.max(1e-9)) as u64
}

/// Eight independent lanes so the loop is bound by loads, not by one addition chain.
fn sum(part: &[u64]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut chunks = part.chunks_exact(8);
    for c in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(c) {
            *lane = lane.wrapping_add(*v);
        }
    }
    let rest = chunks.remainder().iter().fold(0u64, |a, b| a.wrapping_add(*b));
    lanes.iter().fold(rest, |a, b| a.wrapping_add(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_adds_every_element() {
        let v: Vec<u64> = (1..=1003).collect();
        assert_eq!(sum(&v), 1003 * 1004 / 2);
    }

    #[test]
    fn measures_a_plausible_figure_and_caches_it_per_machine() {
        let dir = tempfile::tempdir().unwrap();
        let mut hw = HardwareProfile::probe();
        let first = cached_or_measured(&hw, dir.path(), 2);
        // Any machine this runs on reads between 100 MB/s and 10 TB/s.
        assert!((100_000_000..10_000_000_000_000).contains(&first), "{first}");
        // Cached: a planted figure for this machine comes back as it is ...
        let planted = Cached { machine: machine_key(&hw), bytes_per_s: 12345 };
        std::fs::write(dir.path().join(CACHE_FILE), serde_json::to_vec(&planted).unwrap()).unwrap();
        assert_eq!(cached_or_measured(&hw, dir.path(), 2), 12345);
        // ... and another machine (more RAM) measures again.
        hw.ram_total_bytes += 1 << 30;
        assert_ne!(cached_or_measured(&hw, dir.path(), 2), 12345);
    }
}
