//! Which catalog models this machine can run, and which one to recommend.
//!
//! A pure function of (`HardwareProfile`, catalog): the same inputs always give the same
//! answer, so the rule is tested on a table of machines (see the tests below).
//!
//! Memory need = weights (the file's size) + KV cache for the context we run with
//! + runtime overhead (a fixed base for the process and scratch buffers, plus a share of
//! the weights for activations). A model *fits on GPU* when that need is within the usable
//! GPU memory, *fits in RAM* when it is within RAM less a reserve for the OS and the app.
//!
//! Limitations: one GPU is considered (the one with most memory); only GPUs the inference
//! engine can drive (NVIDIA, and Apple's unified memory) count; AMD and Intel GPUs are
//! reported by the probe but not used.

use serde::{Deserialize, Serialize};

use super::catalog::{Catalog, CatalogModel, Role};
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
/// On CPU alone, models above this decode too slowly to be useful (under ~5 tokens/s on a
/// laptop), so the pick stops here even when a larger one fits in RAM.
pub const CPU_MAX_PARAMETERS: u64 = 8_000_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FitClass {
    FitsGpu,
    FitsCpu,
    TooLarge,
}

impl FitClass {
    pub fn label(self) -> &'static str {
        match self {
            FitClass::FitsGpu => "fits on GPU",
            FitClass::FitsCpu => "fits in RAM (CPU)",
            FitClass::TooLarge => "too large",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFit {
    pub id: String,
    pub need_bytes: u64,
    pub class: FitClass,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pick {
    pub id: String,
    pub placement: FitClass,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    pub ram_budget_bytes: u64,
    pub gpu_budget_bytes: Option<u64>,
    pub gpu_name: Option<String>,
    pub models: Vec<ModelFit>,
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

/// Usable GPU memory of the best GPU the engine can drive, with its name.
pub fn gpu_budget(hw: &HardwareProfile) -> Option<(u64, String)> {
    if hw.unified_memory {
        let name = hw.gpus.first().map(|g| g.name.clone()).unwrap_or_else(|| "unified-memory GPU".into());
        return Some((hw.ram_total_bytes / 100 * UNIFIED_GPU_SHARE_PERCENT, name));
    }
    hw.gpus
        .iter()
        .filter(|g| g.vendor.to_ascii_lowercase().contains("nvidia"))
        .filter_map(|g| g.vram_total_bytes.map(|v| (v, g)))
        .max_by_key(|(v, _)| *v)
        .map(|(v, g)| (v.saturating_sub(VRAM_RESERVE_MIN.max(v / 20)), g.name.clone()))
}

/// Classifies every catalog model for this machine and picks the one to recommend: the one
/// with most parameters among those that fit (on CPU alone, at most `CPU_MAX_PARAMETERS`);
/// at equal size GPU placement wins, then on GPU the larger (higher quality) quantization,
/// on CPU the smaller (faster) one. Development models are classified but never picked.
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
            ModelFit { id: m.id.clone(), need_bytes: need, class }
        })
        .collect();

    let best = catalog
        .models
        .iter()
        .zip(&models)
        .filter(|(m, f)| m.role == Role::Assistant && f.class != FitClass::TooLarge)
        .filter(|(m, f)| f.class == FitClass::FitsGpu || m.parameters <= CPU_MAX_PARAMETERS)
        .max_by_key(|(m, f)| {
            let on_gpu = f.class == FitClass::FitsGpu;
            let quality = if on_gpu { m.size_bytes as i64 } else { -(m.size_bytes as i64) };
            (m.parameters, on_gpu, quality)
        });

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
                    let why_cpu = match &gpu {
                        None => "no GPU the engine can use".to_string(),
                        Some((b, n)) => format!("{n} has {:.1} GiB usable, too little for it", gib(*b)),
                    };
                    let capped = catalog.models.iter().zip(&models).any(|(o, of)| {
                        o.role == Role::Assistant && of.class == FitClass::FitsCpu && o.parameters > CPU_MAX_PARAMETERS
                    });
                    format!(
                        "runs on the CPU ({why_cpu}): needs {:.1} GiB of {:.1} GiB of RAM usable{}",
                        gib(f.need_bytes),
                        gib(ram),
                        if capped { "; larger models fit in RAM but would decode too slowly on a CPU" } else { "" }
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
        models,
        pick,
        no_pick_reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hardware::{CpuInfo, GpuInfo};

    fn machine(ram_gib: u64, gpu: Option<(&str, u64)>, unified: bool) -> HardwareProfile {
        HardwareProfile {
            os: "test".into(),
            arch: "x86_64".into(),
            cpu: CpuInfo {
                model: "test".into(),
                physical_cores: 4,
                logical_cores: 8,
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
            inference_backends: vec!["cpu".into()],
        }
    }

    /// One machine per line: (what it is, profile, expected pick, expected placement).
    #[test]
    fn picks_for_a_table_of_machines() {
        let q = |s: &str| format!("qwen2.5-coder-{s}-instruct-q4_k_m");
        let table: Vec<(&str, HardwareProfile, Option<String>, Option<FitClass>)> = vec![
            ("8 GB laptop, no GPU", machine(8, None, false), Some(q("3b")), Some(FitClass::FitsCpu)),
            ("16 GB + RTX 4060 8 GB", machine(16, Some(("NVIDIA", 8)), false), Some(q("7b")), Some(FitClass::FitsGpu)),
            ("32 GB + 24 GB GPU", machine(32, Some(("NVIDIA", 24)), false), Some(q("32b")), Some(FitClass::FitsGpu)),
            ("Apple M2 16 GB unified", machine(16, Some(("Apple", 0)), true), Some(q("7b")), Some(FitClass::FitsGpu)),
            ("4 GB RAM", machine(4, None, false), Some(q("0.5b")), Some(FitClass::FitsCpu)),
            ("32 GB, no GPU: capped for speed", machine(32, None, false), Some(q("7b")), Some(FitClass::FitsCpu)),
            ("16 GB + AMD 8 GB (not usable)", machine(16, Some(("AMD", 8)), false), Some(q("7b")), Some(FitClass::FitsCpu)),
            ("64 GB + 2x-size GPU 48 GB", machine(64, Some(("NVIDIA", 48)), false), Some(q("32b")), Some(FitClass::FitsGpu)),
            ("2 GB RAM: nothing fits", machine(2, None, false), None, None),
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
    fn the_development_model_is_classified_but_never_picked() {
        let catalog = Catalog::builtin();
        let a = assess(&machine(4, None, false), &catalog);
        let dev = a.models.iter().find(|m| m.id.starts_with("smollm2")).unwrap();
        assert_eq!(dev.class, FitClass::FitsCpu);
        assert!(!a.pick.unwrap().id.starts_with("smollm2"));
    }

    #[test]
    fn need_grows_with_size_and_context() {
        let c = Catalog::builtin();
        let small = memory_need(c.get(&"qwen2.5-coder-0.5b-instruct-q4_k_m".to_string()).unwrap());
        let big = memory_need(c.get("qwen2.5-coder-32b-instruct-q4_k_m").unwrap());
        assert!(small < GIB && big > 20 * GIB, "{small} {big}");
    }
}
