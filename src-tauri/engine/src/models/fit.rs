//! Which catalog models this machine can run, and which one to recommend.
//!
//! A pure function of (`HardwareProfile`, catalog): the same inputs always give the same
//! answer, so the rule is tested on a table of machines (see the tests below).
//!
//! Memory need = weights (the file's size) + KV cache for the context we run with
//! + runtime overhead (a fixed base for the process and scratch buffers, plus a share of
//! the weights for activations). A model *fits on GPU* when that need is within the usable
//! memory of a GPU this build can drive, *fits in RAM* when it is within RAM less a reserve
//! for the OS and the app.
//!
//! On the CPU the pick is by speed: the largest model whose expected decode speed
//! ([`super::speed`]) reaches [`INTERACTIVE_TOKENS_PER_S`]; if none does, the fastest one.
//!
//! Limitations: one GPU is considered (the one with most memory); a GPU counts only when
//! this build has its backend (NVIDIA with `cuda`, Apple's unified memory with `metal`):
//! a CPU-only build says that a GPU build would use the card instead of promising it.
//! AMD and Intel GPUs are reported by the probe but not used.

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, CatalogModel, Role};
use super::speed::cpu_decode_tokens_per_s;
pub use super::speed::INTERACTIVE_TOKENS_PER_S;
use crate::hardware::HardwareProfile;

const GIB: u64 = 1 << 30;
/// Context the app runs models with; a model trained on less gets its own length.
pub const RUN_CONTEXT_TOKENS: u64 = 8192;
/// The inference process, tokenizer and scratch buffers before any weight is loaded.
const RUNTIME_BASE_BYTES: u64 = 300 << 20;
/// Activations and dequantization buffers grow with the model: 5% of the weights.
const RUNTIME_WEIGHT_SHARE: u64 = 20;
/// RAM kept for the OS, the desktop and the app itself: 3 GiB or a quarter, whichever is more.
const RAM_RESERVE_MIN: u64 = 3 * GIB;
/// VRAM kept for the display and driver: 768 MiB or 5%, whichever is more.
const VRAM_RESERVE_MIN: u64 = 768 << 20;
/// macOS lets the GPU wire about two thirds of unified memory by default.
const UNIFIED_GPU_SHARE_PERCENT: u64 = 65;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
/// Where a model can run on this machine.
pub enum FitClass {
    /// Entirely in the GPU's memory.
    FitsGpu,
    /// In RAM, on the CPU.
    FitsCpu,
    /// Neither.
    TooLarge,
}

impl FitClass {
    /// How the UI and `perimeter hw` word it.
    pub fn label(self) -> &'static str {
        match self {
            FitClass::FitsGpu => "fits on GPU",
            FitClass::FitsCpu => "fits in RAM (CPU)",
            FitClass::TooLarge => "too large",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
/// How one catalog model fits this machine.
pub struct ModelFit {
    /// The catalog id.
    pub id: String,
    /// Memory it needs: weights, KV cache for its context, working space.
    pub need_bytes: u64,
    /// Where it fits.
    pub class: FitClass,
    /// Expected decode speed on this machine's CPU (tokens/s), for a model that runs there.
    pub cpu_tokens_per_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
/// The model recommended for this machine.
pub struct Pick {
    /// The catalog id.
    pub id: String,
    /// Where it would run.
    pub placement: FitClass,
    /// Why this one, in words.
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ts_rs::TS)]
/// Every catalog model classified for this machine, and the pick.
pub struct Assessment {
    /// RAM a model may take, leaving the rest to the system and the app.
    pub ram_budget_bytes: u64,
    /// GPU memory a model may take, when there is a GPU this build can use.
    pub gpu_budget_bytes: Option<u64>,
    /// That GPU's name.
    pub gpu_name: Option<String>,
    /// A GPU is present that this build cannot use, and which build would.
    pub gpu_note: Option<String>,
    /// The decode speed the CPU pick aims for (tokens/s).
    pub interactive_tokens_per_s: f64,
    /// Every catalog model, in the catalog's order.
    pub models: Vec<ModelFit>,
    /// The recommendation, if any model runs here.
    pub pick: Option<Pick>,
    /// Why there is no pick, when there is none.
    pub no_pick_reason: Option<String>,
}

/// Bytes a model needs to run with `RUN_CONTEXT_TOKENS` of context.
pub fn memory_need(m: &CatalogModel) -> u64 {
    let context = RUN_CONTEXT_TOKENS.min(m.context_length.max(1));
    m.size_bytes + m.kv_bytes_per_token() * context + RUNTIME_BASE_BYTES + m.size_bytes / RUNTIME_WEIGHT_SHARE
}

/// RAM available to a model after the reserve for the OS and the app.
pub fn ram_budget(hw: &HardwareProfile) -> u64 {
    hw.ram_total_bytes.saturating_sub(RAM_RESERVE_MIN.max(hw.ram_total_bytes / 4))
}

/// A GPU the probe found, with the backend that would drive it and its usable memory.
struct FoundGpu {
    name: String,
    backend: &'static str,
    usable_bytes: u64,
}

/// The best GPU the engine could drive in some build: Apple's unified memory, else the
/// NVIDIA card with most memory.
fn best_gpu(hw: &HardwareProfile) -> Option<FoundGpu> {
    if hw.unified_memory {
        let name = hw.gpus.first().map(|g| g.name.clone()).unwrap_or_else(|| "unified-memory GPU".into());
        let usable_bytes = hw.ram_total_bytes / 100 * UNIFIED_GPU_SHARE_PERCENT;
        return Some(FoundGpu { name, backend: "metal", usable_bytes });
    }
    hw.gpus
        .iter()
        .filter(|g| g.vendor.to_ascii_lowercase().contains("nvidia"))
        .filter_map(|g| g.vram_total_bytes.map(|v| (v, g)))
        .max_by_key(|(v, _)| *v)
        .map(|(v, g)| FoundGpu {
            name: g.name.clone(),
            backend: "cuda",
            usable_bytes: v.saturating_sub(VRAM_RESERVE_MIN.max(v / 20)),
        })
}

impl FoundGpu {
    /// Whether this build has the backend that drives it.
    fn driven_by_this_build(&self, hw: &HardwareProfile) -> bool {
        hw.inference_backends.iter().any(|b| b == self.backend)
    }
}

/// Usable GPU memory of the best GPU this build can drive, with its name.
pub fn gpu_budget(hw: &HardwareProfile) -> Option<(u64, String)> {
    best_gpu(hw).filter(|g| g.driven_by_this_build(hw)).map(|g| (g.usable_bytes, g.name))
}

/// Says so when the machine has a GPU that another build of Perimeter would use, or that the
/// CUDA build cannot use here (and why).
fn idle_gpu_note(hw: &HardwareProfile) -> Option<String> {
    let g = best_gpu(hw).filter(|g| !g.driven_by_this_build(hw))?;
    if g.backend == "cuda" && cfg!(feature = "cuda") {
        // The CUDA build, on a machine whose driver or libraries do not answer.
        let why = crate::inference::cuda_unusable().unwrap_or_else(|| "the driver did not answer".into());
        return Some(format!("{} is not used: {why}; models run on the CPU", g.name));
    }
    let build = if g.backend == "cuda" { "the CUDA build (perimeter-cuda)" } else { "a Metal build" };
    Some(format!(
        "{} ({:.1} GiB usable) is not used: this build runs models on the CPU only; {build} would run them on it",
        g.name,
        g.usable_bytes as f64 / GIB as f64
    ))
}

/// Classifies every catalog model for this machine and picks the one to recommend: the one
/// with most parameters among those that fit on the GPU or run on the CPU at an interactive
/// speed; at equal size GPU placement wins, then on GPU the larger (higher quality)
/// quantization, on CPU the smaller (faster) one. When no model is fast enough on the CPU,
/// the fastest that fits. Development models are classified but never picked.
pub fn assess(hw: &HardwareProfile, catalog: &Catalog) -> Assessment {
    let ram = ram_budget(hw);
    let gpu = gpu_budget(hw);
    let models: Vec<ModelFit> = catalog
        .models
        .iter()
        .map(|m| {
            let need = memory_need(m);
            let class = match gpu {
                Some((budget, _)) if need <= budget => FitClass::FitsGpu,
                _ if need <= ram => FitClass::FitsCpu,
                _ => FitClass::TooLarge,
            };
            let cpu_tokens_per_s = (class == FitClass::FitsCpu).then(|| cpu_decode_tokens_per_s(m, hw));
            ModelFit { id: m.id.clone(), need_bytes: need, class, cpu_tokens_per_s }
        })
        .collect();

    let offered = || catalog.models.iter().zip(&models).filter(|(m, f)| m.role == Role::Assistant && f.class != FitClass::TooLarge);
    let interactive = |f: &ModelFit| f.cpu_tokens_per_s.is_some_and(|t| t >= INTERACTIVE_TOKENS_PER_S);
    let best = offered()
        .filter(|(_, f)| f.class == FitClass::FitsGpu || interactive(f))
        .max_by_key(|(m, f)| {
            let on_gpu = f.class == FitClass::FitsGpu;
            let quality = if on_gpu { m.size_bytes as i64 } else { -(m.size_bytes as i64) };
            (m.parameters, on_gpu, quality)
        })
        .or_else(|| offered().max_by(|(_, a), (_, b)| a.cpu_tokens_per_s.unwrap_or(0.0).total_cmp(&b.cpu_tokens_per_s.unwrap_or(0.0))));

    let gpu_note = idle_gpu_note(hw);
    let gib = |b: u64| b as f64 / GIB as f64;
    let (pick, no_pick_reason) = match best {
        Some((m, f)) => {
            let reason = match f.class {
                FitClass::FitsGpu => format!(
                    "the largest model that fits in GPU memory: needs {:.1} GiB of {:.1} GiB usable on {}",
                    gib(f.need_bytes),
                    gib(gpu.as_ref().map_or(0, |g| g.0)),
                    gpu.as_ref().map_or("the GPU", |g| g.1.as_str())
                ),
                _ => {
                    let why_cpu = match (&gpu, &gpu_note) {
                        (Some((b, n)), _) => format!("{n} has {:.1} GiB usable, too little for it", gib(*b)),
                        (None, Some(_)) => "this build has no GPU backend".to_string(),
                        (None, None) => "no GPU the engine can use".to_string(),
                    };
                    let speed = f.cpu_tokens_per_s.unwrap_or(0.0);
                    // The next larger model that fits in RAM, and how slow it would be.
                    let slower = offered()
                        .filter(|(o, of)| o.parameters > m.parameters && of.class == FitClass::FitsCpu)
                        .min_by_key(|(o, _)| (o.parameters, o.size_bytes))
                        .and_then(|(_, of)| of.cpu_tokens_per_s);
                    let pace = if speed >= INTERACTIVE_TOKENS_PER_S {
                        format!("about {speed:.0} tokens/s expected, at least the {INTERACTIVE_TOKENS_PER_S:.0} tokens/s that keep up with reading")
                    } else {
                        format!("about {speed:.1} tokens/s expected, below the {INTERACTIVE_TOKENS_PER_S:.0} tokens/s that keep up with reading, and the fastest that fits")
                    };
                    format!(
                        "runs on the CPU ({why_cpu}): {pace}; needs {:.1} GiB of {:.1} GiB of RAM usable{}",
                        gib(f.need_bytes),
                        gib(ram),
                        slower.map_or(String::new(), |t| format!("; a larger model fits in RAM but would decode at about {t:.1} tokens/s"))
                    )
                }
            };
            (Some(Pick { id: m.id.clone(), placement: f.class, reason }), None)
        }
        None => (
            None,
            Some(format!(
                "no catalog model fits: {:.1} GiB of RAM usable after {:.1} GiB kept for the system",
                gib(ram),
                gib(hw.ram_total_bytes - ram)
            )),
        ),
    };

    Assessment {
        ram_budget_bytes: ram,
        gpu_budget_bytes: gpu.as_ref().map(|g| g.0),
        gpu_name: gpu.map(|g| g.1),
        gpu_note,
        interactive_tokens_per_s: INTERACTIVE_TOKENS_PER_S,
        models,
        pick,
        no_pick_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::{CpuInfo, GpuInfo};

    /// A machine: RAM, physical cores, measured memory bandwidth (GB/s), a GPU (vendor, VRAM
    /// GiB), whether memory is unified, and the backends of the build that runs on it.
    fn machine(ram_gib: u64, cores: usize, bandwidth_gb_s: u64, gpu: Option<(&str, u64)>, unified: bool, backends: &[&str]) -> HardwareProfile {
        HardwareProfile {
            os: "test".into(),
            arch: "x86_64".into(),
            cpu: CpuInfo {
                model: "test".into(),
                physical_cores: cores,
                logical_cores: cores * 2,
                simd_level: "x86-64-v3".into(),
                features: vec![],
            },
            ram_total_bytes: ram_gib * GIB,
            ram_available_bytes: ram_gib * GIB / 2,
            gpus: gpu
                .map(|(vendor, vram)| GpuInfo {
                    vendor: vendor.into(),
                    name: format!("{vendor} GPU"),
                    vram_total_bytes: if unified { None } else { Some(vram * GIB) },
                    vram_used_bytes: None,
                })
                .into_iter()
                .collect(),
            unified_memory: unified,
            inference_backends: backends.iter().map(|b| b.to_string()).collect(),
            memory_read_bytes_per_s: Some(bandwidth_gb_s * 1_000_000_000),
        }
    }

    const CPU: &[&str] = &["cpu"];
    const CUDA: &[&str] = &["cpu", "cuda"];
    const METAL: &[&str] = &["cpu", "metal"];

    /// One machine per line: (what it is, profile, expected pick, expected placement).
    #[test]
    fn picks_for_a_table_of_machines() {
        let q = |s: &str| format!("qwen2.5-coder-{s}-instruct-q4_k_m");
        let table: Vec<(&str, HardwareProfile, Option<String>, Option<FitClass>)> = vec![
            ("2-core VM, 24 GB (the build machine)", machine(24, 2, 20, None, false, CPU), Some(q("1.5b")), Some(FitClass::FitsCpu)),
            ("8 GB laptop, 4 cores, no GPU", machine(8, 4, 25, None, false, CPU), Some(q("3b")), Some(FitClass::FitsCpu)),
            ("16 GB + RTX 4060 8 GB, CPU-only build", machine(16, 8, 50, Some(("NVIDIA", 8)), false, CPU), Some(q("7b")), Some(FitClass::FitsCpu)),
            ("16 GB + RTX 4060 8 GB, CUDA build", machine(16, 8, 50, Some(("NVIDIA", 8)), false, CUDA), Some(q("7b")), Some(FitClass::FitsGpu)),
            ("4 cores + RTX 4060 8 GB, CPU-only build: speed-capped", machine(16, 4, 50, Some(("NVIDIA", 8)), false, CPU), Some(q("3b")), Some(FitClass::FitsCpu)),
            ("32 GB + 24 GB GPU, CUDA build", machine(32, 8, 50, Some(("NVIDIA", 24)), false, CUDA), Some(q("32b")), Some(FitClass::FitsGpu)),
            ("Apple M2 16 GB unified, Metal build", machine(16, 8, 100, Some(("Apple", 0)), true, METAL), Some(q("7b")), Some(FitClass::FitsGpu)),
            ("4 GB RAM, 2 cores", machine(4, 2, 10, None, false, CPU), Some(q("0.5b")), Some(FitClass::FitsCpu)),
            ("32 GB, 16 cores, no GPU: 14B fits but is slow", machine(32, 16, 60, None, false, CPU), Some(q("7b")), Some(FitClass::FitsCpu)),
            ("16 GB + AMD 8 GB (no backend drives it)", machine(16, 8, 40, Some(("AMD", 8)), false, CUDA), Some(q("7b")), Some(FitClass::FitsCpu)),
            ("64 GB + 48 GB GPU, CUDA build", machine(64, 16, 80, Some(("NVIDIA", 48)), false, CUDA), Some(q("32b")), Some(FitClass::FitsGpu)),
            ("1 slow core: nothing is interactive, the fastest", machine(8, 1, 3, None, false, CPU), Some(q("0.5b")), Some(FitClass::FitsCpu)),
            ("2 GB RAM: nothing fits", machine(2, 2, 10, None, false, CPU), None, None),
        ];
        let catalog = Catalog::builtin();
        for (what, hw, id, placement) in table {
            let a = assess(&hw, &catalog);
            assert_eq!(a.pick.as_ref().map(|p| p.id.clone()), id, "{what}: {:#?}", a.pick);
            assert_eq!(a.pick.as_ref().map(|p| p.placement), placement, "{what}");
            assert_eq!(a.no_pick_reason.is_some(), a.pick.is_none(), "{what}");
        }
    }

    #[test]
    fn a_cpu_only_build_never_promises_the_gpu_and_says_what_would_use_it() {
        let catalog = Catalog::builtin();
        let a = assess(&machine(16, 8, 50, Some(("NVIDIA", 8)), false, CPU), &catalog);
        assert!(a.models.iter().all(|m| m.class != FitClass::FitsGpu), "{:#?}", a.models);
        assert_eq!(a.gpu_budget_bytes, None);
        let note = a.gpu_note.as_deref().unwrap();
        assert!(note.contains("NVIDIA GPU") && note.contains("CUDA build"), "{note}");
        assert!(a.pick.unwrap().reason.contains("this build has no GPU backend"));
        // The CUDA build uses it and has nothing to say.
        let a = assess(&machine(16, 8, 50, Some(("NVIDIA", 8)), false, CUDA), &catalog);
        assert_eq!(a.gpu_note, None);
        assert!(a.gpu_budget_bytes.is_some());
        // Apple's unified memory needs the Metal build.
        let a = assess(&machine(16, 8, 100, Some(("Apple", 0)), true, CPU), &catalog);
        assert!(a.models.iter().all(|m| m.class != FitClass::FitsGpu));
        assert!(a.gpu_note.unwrap().contains("Metal build"));
    }

    #[test]
    fn the_cpu_pick_states_its_speed_and_the_larger_models_speed() {
        let catalog = Catalog::builtin();
        let a = assess(&machine(24, 2, 20, None, false, CPU), &catalog);
        let fit = |id: &str| a.models.iter().find(|m| m.id == id).unwrap().clone();
        let picked = fit("qwen2.5-coder-1.5b-instruct-q4_k_m");
        let larger = fit("qwen2.5-coder-3b-instruct-q4_k_m");
        assert!(picked.cpu_tokens_per_s.unwrap() >= INTERACTIVE_TOKENS_PER_S);
        assert!(larger.cpu_tokens_per_s.unwrap() < INTERACTIVE_TOKENS_PER_S);
        let reason = a.pick.unwrap().reason;
        assert!(reason.contains("tokens/s expected") && reason.contains("a larger model fits in RAM but would decode at about"), "{reason}");
        // Nothing interactive: the pick says it is below the threshold.
        let slow = assess(&machine(8, 1, 3, None, false, CPU), &catalog);
        assert!(slow.pick.unwrap().reason.contains("below the 8 tokens/s"));
    }

    #[test]
    fn the_development_model_is_classified_but_never_picked() {
        let catalog = Catalog::builtin();
        let a = assess(&machine(4, 2, 10, None, false, CPU), &catalog);
        let dev = a.models.iter().find(|m| m.id.starts_with("smollm2")).unwrap();
        assert_eq!(dev.class, FitClass::FitsCpu);
        assert!(!a.pick.unwrap().id.starts_with("smollm2"));
    }

    #[test]
    fn need_grows_with_size_and_context() {
        let c = Catalog::builtin();
        let small = memory_need(c.get("qwen2.5-coder-0.5b-instruct-q4_k_m").unwrap());
        let big = memory_need(c.get("qwen2.5-coder-32b-instruct-q4_k_m").unwrap());
        assert!(small < GIB && big > 20 * GIB, "{small} {big}");
    }
}
