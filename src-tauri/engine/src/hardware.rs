//! Hardware probe: CPU, SIMD level, RAM and GPUs with their memory.
//!
//! The probe only reads; what the numbers mean for a model is `models::fit`'s job, a pure
//! function of the `HardwareProfile` this returns.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub mod bandwidth;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
/// What the hardware probe found: the machine the models must fit.
pub struct HardwareProfile {
    /// Operating system, as Rust names it (`linux`, `macos`, `windows`).
    pub os: String,
    /// CPU architecture, as Rust names it (`x86_64`, `aarch64`).
    pub arch: String,
    /// The processor.
    pub cpu: CpuInfo,
    /// Installed RAM.
    pub ram_total_bytes: u64,
    /// RAM free for a model now.
    pub ram_available_bytes: u64,
    /// The GPUs found, with their memory when the driver tells it.
    pub gpus: Vec<GpuInfo>,
    /// The GPU shares system RAM (Apple silicon): VRAM is a share of `ram_total_bytes`.
    pub unified_memory: bool,
    /// Backends this build of the inference engine was compiled with and can run here ("cpu",
    /// "cuda" when the NVIDIA driver answers, "metal").
    pub inference_backends: Vec<String>,
    /// Memory read bandwidth in bytes/s, when measured ([`HardwareProfile::with_memory_bandwidth`]).
    #[serde(default)]
    pub memory_read_bytes_per_s: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
/// The processor, as the models' speed depends on it.
pub struct CpuInfo {
    /// Its marketing name.
    pub model: String,
    /// Cores (what decoding threads are counted in).
    pub physical_cores: usize,
    /// Hardware threads.
    pub logical_cores: usize,
    /// e.g. "x86-64-v3", "x86-64-v4", "neon".
    pub simd_level: String,
    /// The SIMD features found that the CPU kernels care about (`avx2`, `fma`, `f16c`…).
    pub features: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
/// A GPU found on the machine.
pub struct GpuInfo {
    /// The vendor, as the driver names it ("unknown" when it does not).
    pub vendor: String,
    /// Its model name, as the driver gives it.
    pub name: String,
    /// Its memory, when the driver says.
    pub vram_total_bytes: Option<u64>,
    /// Memory in use by other programs, when the driver says.
    pub vram_used_bytes: Option<u64>,
}

impl HardwareProfile {
    /// Reads this machine. Takes a few milliseconds; GPUs that cannot be read are left out.
    pub fn probe() -> HardwareProfile {
        use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};
        let sys = System::new_with_specifics(
            RefreshKind::nothing()
                .with_memory(MemoryRefreshKind::everything())
                .with_cpu(CpuRefreshKind::nothing()),
        )
        .ok();
        let cpus = sys.as_ref().map_or(&[][..], |s| s.cpus());
        let logical = cpus.len().max(std::thread::available_parallelism().map_or(1, |n| n.get()));
        let cpu_model = cpus
            .first()
            .map(|c| c.brand().trim().to_string())
            .filter(|b| !b.is_empty())
            .unwrap_or_else(|| "unknown CPU".to_string());
        let (simd_level, features) = simd();
        let gpus = sysinfo::Gpus::new_with_refreshed_list()
            .map(|list| {
                list.iter()
                    .map(|g| GpuInfo {
                        vendor: g.vendor().unwrap_or("unknown").to_string(),
                        name: g.model().unwrap_or("unknown GPU").to_string(),
                        vram_total_bytes: g.total_memory(),
                        vram_used_bytes: g.used_memory(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        HardwareProfile {
            os: System::long_os_version().unwrap_or_else(|_| std::env::consts::OS.to_string()),
            arch: std::env::consts::ARCH.to_string(),
            cpu: CpuInfo {
                model: cpu_model,
                physical_cores: System::physical_core_count().unwrap_or(logical),
                logical_cores: logical,
                simd_level,
                features,
            },
            ram_total_bytes: sys.as_ref().map_or(0, |s| s.total_memory()),
            ram_available_bytes: sys.as_ref().map_or(0, |s| s.available_memory()),
            gpus,
            unified_memory: cfg!(all(target_os = "macos", target_arch = "aarch64")),
            inference_backends: compiled_backends(),
            memory_read_bytes_per_s: None,
        }
    }

    /// Adds the memory read bandwidth: measured once per machine (~0.2 s) with one thread
    /// per physical core, then read from a cache in `data_dir`.
    pub fn with_memory_bandwidth(mut self, data_dir: &std::path::Path) -> HardwareProfile {
        self.memory_read_bytes_per_s = Some(bandwidth::cached_or_measured(&self, data_dir, self.cpu.physical_cores));
        self
    }
}

#[cfg(target_arch = "x86_64")]
fn simd() -> (String, Vec<String>) {
    let mut f = Vec::new();
    macro_rules! probe {
        ($($name:tt),*) => {$( if std::arch::is_x86_feature_detected!($name) { f.push($name.to_string()); } )*};
    }
    probe!("sse4.2", "avx", "avx2", "fma", "f16c", "bmi2", "avx512f", "avx512bw", "avx512vl");
    let has = |n: &str| f.iter().any(|x| x == n);
    let level = if ["avx512f", "avx512bw", "avx512vl"].iter().all(|n| has(n)) && has("avx2") {
        "x86-64-v4"
    } else if ["avx2", "fma", "f16c", "bmi2"].iter().all(|n| has(n)) {
        "x86-64-v3"
    } else if has("sse4.2") {
        "x86-64-v2"
    } else {
        "x86-64"
    };
    (level.to_string(), f)
}

#[cfg(target_arch = "aarch64")]
fn simd() -> (String, Vec<String>) {
    ("neon".to_string(), vec!["neon".to_string()])
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn simd() -> (String, Vec<String>) {
    ("none".to_string(), Vec::new())
}

/// Refuses to go on, with a clear message, on a CPU that lacks the instructions this binary
/// was compiled for (x86-64-v3), instead of dying later on an illegal instruction.
/// Call it first thing in `main`.
pub fn require_compiled_simd() -> Result<()> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut missing = Vec::new();
        if cfg!(target_feature = "avx2") && !std::arch::is_x86_feature_detected!("avx2") {
            missing.push("AVX2");
        }
        if cfg!(target_feature = "fma") && !std::arch::is_x86_feature_detected!("fma") {
            missing.push("FMA");
        }
        if cfg!(target_feature = "f16c") && !std::arch::is_x86_feature_detected!("f16c") {
            missing.push("F16C");
        }
        if !missing.is_empty() {
            return Err(Error::CpuUnsupported { missing: missing.join(", ") });
        }
    }
    Ok(())
}

/// The inference backends compiled into this build (the engine's `cuda` and `metal`
/// features) that can run here, so the fit never promises a GPU this build cannot use: the
/// CUDA build lists `cuda` only when the driver and CUDA's libraries answer.
pub fn compiled_backends() -> Vec<String> {
    let mut b = vec!["cpu".to_string()];
    if cfg!(feature = "cuda") && crate::inference::cuda_unusable().is_none() {
        b.push("cuda".to_string());
    }
    if cfg!(feature = "metal") {
        b.push("metal".to_string());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reads_this_machine() {
        let p = HardwareProfile::probe();
        assert!(p.ram_total_bytes > 0);
        assert!(p.cpu.logical_cores >= 1);
        assert!(p.inference_backends.contains(&"cpu".to_string()));
        require_compiled_simd().expect("the test machine runs the binary it built");
    }
}

