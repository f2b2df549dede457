//! How fast a catalog model is expected to decode on this machine's CPU, before its file is
//! here: the pick on a CPU is by speed, not only by what fits in RAM.
//!
//! Decoding one token reads every weight once and the KV cache of the context, so
//! `tokens/s = rate / bytes read per token`, where the rate is the slower of
//! - the memory read bandwidth the probe measured (`hardware::bandwidth`), and
//! - what the cores can dequantize and multiply: `physical cores x` [`CPU_WEIGHT_BYTES_PER_CORE_PER_S`].
//!
//! On a laptop or a small VM the cores are the limit; on a desktop with many cores, memory is.

use super::catalog::CatalogModel;
use crate::hardware::HardwareProfile;

/// Bytes of quantized weights one core works through per second while decoding (x86-64-v3,
/// AVX2). Calibrated on the build machine (2 cores of an AMD EPYC, 2 threads):
/// Qwen2.5-Coder-1.5B Q4_K_M (1.12 GB) decodes at ~9 tokens/s, ~5.0 GB/s per core
/// (`scripts/bench-inference.sh`, BENCHMARKS.md).
pub const CPU_WEIGHT_BYTES_PER_CORE_PER_S: f64 = 5.0e9;

/// An answer that decodes at least this fast keeps up with reading it (~6 words/s), so the
/// CPU pick is the largest model that reaches it.
pub const INTERACTIVE_TOKENS_PER_S: f64 = 8.0;

/// Context whose KV cache is counted in the bytes read per token: a question with a few
/// excerpts.
const TYPICAL_CONTEXT_TOKENS: u64 = 2048;

/// Bytes decoding one token reads: all weights, and the KV cache of a typical context.
pub fn bytes_read_per_token(m: &CatalogModel) -> u64 {
    m.size_bytes + m.kv_bytes_per_token() * TYPICAL_CONTEXT_TOKENS.min(m.context_length.max(1))
}

/// Expected decode speed of `m` on this machine's CPU, in tokens/s.
pub fn cpu_decode_tokens_per_s(m: &CatalogModel, hw: &HardwareProfile) -> f64 {
    let compute = hw.cpu.physical_cores.max(1) as f64 * CPU_WEIGHT_BYTES_PER_CORE_PER_S;
    let rate = match hw.memory_read_bytes_per_s {
        Some(bandwidth) if bandwidth > 0 => compute.min(bandwidth as f64),
        _ => compute,
    };
    rate / bytes_read_per_token(m).max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Catalog;

    fn machine(cores: usize, bandwidth_gb_s: Option<u64>) -> HardwareProfile {
        let mut hw = HardwareProfile::probe();
        hw.cpu.physical_cores = cores;
        hw.memory_read_bytes_per_s = bandwidth_gb_s.map(|g| g * 1_000_000_000);
        hw
    }

    #[test]
    fn the_calibration_machine_gets_its_measured_speed() {
        let c = Catalog::builtin();
        let m = c.get("qwen2.5-coder-1.5b-instruct-q4_k_m").unwrap();
        let est = cpu_decode_tokens_per_s(m, &machine(2, Some(20)));
        assert!((8.0..10.0).contains(&est), "{est}");
    }

    #[test]
    fn bandwidth_caps_many_cores_and_larger_models_are_slower() {
        let c = Catalog::builtin();
        let m7 = c.get("qwen2.5-coder-7b-instruct-q4_k_m").unwrap();
        let m3 = c.get("qwen2.5-coder-3b-instruct-q4_k_m").unwrap();
        let many_cores = machine(32, Some(40));
        // 32 cores could dequantize 160 GB/s; memory delivers 40.
        let est = cpu_decode_tokens_per_s(m7, &many_cores);
        assert!((est - 40e9 / bytes_read_per_token(m7) as f64).abs() < 1e-9, "{est}");
        assert!(cpu_decode_tokens_per_s(m3, &many_cores) > est);
        // Without a measured bandwidth, the cores alone set the rate.
        assert!(cpu_decode_tokens_per_s(m7, &machine(32, None)) > est);
    }
}
