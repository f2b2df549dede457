//! Where a local model runs, and why there: the NVIDIA GPU when this is the CUDA build and the
//! machine can drive one, otherwise the CPU with the reason in words. The CUDA build loads the
//! driver and CUDA's libraries only here, when it looks (candle-core is patched to load them,
//! not link them), so it starts and falls back to the CPU on machines without them.

use mistralrs::Device;

/// The device a model is loaded on, and what the hosts say about it.
pub struct Placement {
    /// What mistral.rs loads the model onto.
    pub device: Device,
    /// "CPU" or e.g. "NVIDIA GeForce RTX 4060 Laptop GPU (CUDA, compute 8.9, 8.0 GiB)", and
    /// when the CUDA build falls back, why: "CPU (no NVIDIA driver: libcuda.so.1 not found)".
    pub description: String,
}

impl Placement {
    fn cpu(why: Option<String>) -> Placement {
        let description = match why {
            Some(why) => format!("CPU ({why})"),
            None => "CPU".to_string(),
        };
        Placement { device: Device::Cpu, description }
    }

    /// The device for a model load: the CPU when `force_cpu`, else the best this build and this
    /// machine allow. Never panics: the CUDA libraries are probed before candle touches them.
    pub fn choose(force_cpu: bool) -> Placement {
        if force_cpu {
            return Placement::cpu(None);
        }
        #[cfg(feature = "cuda")]
        {
            match cuda::open() {
                Ok(p) => return p,
                Err(why) => return Placement::cpu(Some(why)),
            }
        }
        #[allow(unreachable_code)]
        Placement::cpu(None)
    }

    /// Whether the model goes to a GPU (mistral.rs may still put some layers on the CPU).
    pub fn is_gpu(&self) -> bool {
        !matches!(self.device, Device::Cpu)
    }
}

/// How many of a loaded model's repeating layers mistral.rs put on the GPU: it maps as many as
/// the GPU's free memory holds (with room for the KV cache) and the rest to the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerSplit {
    /// Layers on the GPU.
    pub on_gpu: usize,
    /// All the model's layers.
    pub of: usize,
}

/// Where a loaded model runs, in words, and a note for the user when a GPU load did not put
/// the whole model on the GPU (slower, and a smaller model would fit). `placement` is the
/// [`Placement::description`]; `on_gpu_device` whether the load went to the GPU.
pub fn describe_load(placement: &str, on_gpu_device: bool, split: LayerSplit) -> (String, Option<String>) {
    let LayerSplit { on_gpu, of } = split;
    if !on_gpu_device {
        return (placement.to_string(), None);
    }
    if on_gpu >= of {
        return (format!("{placement}, all {of} layers"), None);
    }
    let on_cpu = of - on_gpu;
    if on_gpu == 0 {
        return (
            format!("CPU (the model does not fit in the free memory of {placement})"),
            Some(format!(
                "The model does not fit in the GPU's free memory: all {of} of its layers run on the CPU, which is much slower. \
                 A smaller model runs on the GPU; closing other programs that use the GPU frees memory."
            )),
        );
    }
    (
        format!("{placement}, {on_gpu} of {of} layers (the other {on_cpu} on the CPU)"),
        Some(format!(
            "The model is larger than the GPU's free memory: {on_gpu} of its {of} layers run on the GPU and {on_cpu} on the CPU, \
             which is slower. A smaller model runs wholly on the GPU."
        )),
    )
}

#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::cuda_backend::cudarc;
    use mistralrs::Device;

    use super::Placement;

    /// The CUDA version the build's PTX needs the driver to understand (13.0).
    const DRIVER_AT_LEAST: i32 = 13000;

    /// GPU 0 as the driver describes it, if the driver and the libraries are there and new
    /// enough; else why not, in words. Asked once per process: the hardware profile, the fit's
    /// note, `perimeter hw` and every model load all want the same answer.
    pub fn probe() -> Result<String, String> {
        static ANSWER: std::sync::OnceLock<Result<String, String>> = std::sync::OnceLock::new();
        ANSWER.get_or_init(ask_driver).clone()
    }

    fn ask_driver() -> Result<String, String> {
        // SAFETY: each call only tries to dlopen the library (and keeps it if found).
        let (driver, cublas, curand, nvrtc) = unsafe {
            (
                cudarc::driver::sys::is_culib_present(),
                cudarc::cublas::sys::is_culib_present(),
                cudarc::curand::sys::is_culib_present(),
                cudarc::nvrtc::sys::is_culib_present(),
            )
        };
        if !driver {
            return Err("no NVIDIA driver: libcuda.so.1 not found".into());
        }
        let missing: Vec<&str> = [(cublas, "cuBLAS"), (curand, "cuRAND"), (nvrtc, "NVRTC")]
            .into_iter()
            .filter_map(|(present, name)| (!present).then_some(name))
            .collect();
        if !missing.is_empty() {
            return Err(format!("CUDA libraries missing: {} (reinstall perimeter-cuda)", missing.join(", ")));
        }
        cudarc::driver::result::init().map_err(|e| format!("the NVIDIA driver did not start: {e}"))?;
        let mut version = 0;
        // SAFETY: cuInit succeeded; the call writes one integer.
        unsafe { cudarc::driver::sys::cuDriverGetVersion(&mut version) }.result().map_err(|e| format!("the NVIDIA driver's version: {e}"))?;
        if version < DRIVER_AT_LEAST {
            return Err(format!(
                "the NVIDIA driver supports CUDA {}.{}; this build needs 13.0 or later (driver 580 or later)",
                version / 1000,
                version % 1000 / 10
            ));
        }
        let count = cudarc::driver::result::device::get_count().map_err(|e| format!("counting GPUs: {e}"))?;
        if count < 1 {
            return Err("the NVIDIA driver sees no GPU".into());
        }
        let context = cudarc::driver::CudaContext::new(0).map_err(|e| format!("opening the GPU: {e}"))?;
        let name = context.name().unwrap_or_else(|_| "NVIDIA GPU".into());
        let (major, minor) = context.compute_capability().unwrap_or((0, 0));
        if major < 8 {
            return Err(format!("{name} is compute {major}.{minor}; this build's kernels need 8.0 (Ampere) or later"));
        }
        let memory = context.total_mem().map(|b| format!(", {:.1} GiB", b as f64 / (1u64 << 30) as f64)).unwrap_or_default();
        Ok(format!("{name} (CUDA, compute {major}.{minor}{memory})"))
    }

    /// GPU 0 for candle, or why not.
    pub fn open() -> Result<Placement, String> {
        let description = probe()?;
        // candle opens its own context on the device (the driver shares the primary one).
        let device = std::panic::catch_unwind(|| Device::new_cuda(0))
            .map_err(|_| "opening the GPU crashed in candle".to_string())?
            .map_err(|e| format!("opening the GPU: {e}"))?;
        Ok(Placement { device, description })
    }
}

/// Why models cannot run on an NVIDIA GPU here (`None`: they can): the CPU build says it is
/// not the CUDA build; the CUDA build asks the driver (a fraction of a second).
pub fn cuda_unusable() -> Option<String> {
    #[cfg(feature = "cuda")]
    {
        return cuda::probe().err();
    }
    #[allow(unreachable_code)]
    Some("not the CUDA build".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forced_cpu_says_cpu() {
        let p = Placement::choose(true);
        assert!(matches!(p.device, Device::Cpu));
        assert_eq!(p.description, "CPU");
    }

    #[test]
    fn a_cpu_load_is_described_by_its_placement_alone() {
        let split = LayerSplit { on_gpu: 0, of: 30 };
        assert_eq!(describe_load("CPU", false, split), ("CPU".to_string(), None));
        let why = "CPU (no NVIDIA driver: libcuda.so.1 not found)";
        assert_eq!(describe_load(why, false, split), (why.to_string(), None));
    }

    #[test]
    fn a_gpu_load_says_how_many_layers_and_warns_when_split() {
        let gpu = "NVIDIA GeForce RTX 4060 Laptop GPU (CUDA, compute 8.9, 8.0 GiB)";
        let (words, note) = describe_load(gpu, true, LayerSplit { on_gpu: 28, of: 28 });
        assert_eq!(words, format!("{gpu}, all 28 layers"));
        assert_eq!(note, None);

        let (words, note) = describe_load(gpu, true, LayerSplit { on_gpu: 20, of: 48 });
        assert_eq!(words, format!("{gpu}, 20 of 48 layers (the other 28 on the CPU)"));
        let note = note.expect("a split is worth a note");
        assert!(note.contains("20 of its 48 layers run on the GPU and 28 on the CPU"), "{note}");

        let (words, note) = describe_load(gpu, true, LayerSplit { on_gpu: 0, of: 64 });
        assert!(words.starts_with("CPU (the model does not fit"), "{words}");
        assert!(note.expect("all on the CPU is worth a note").contains("all 64 of its layers run on the CPU"));
    }

    /// The CPU build never promises a GPU; the CUDA build on a machine without one (CI, this
    /// development machine) falls back and says why instead of failing.
    #[test]
    fn without_a_usable_gpu_the_cpu_is_chosen_and_the_reason_given() {
        let p = Placement::choose(false);
        if cfg!(feature = "cuda") {
            if let Device::Cpu = p.device {
                assert!(p.description.starts_with("CPU (") && p.description.ends_with(')'), "{}", p.description);
            }
        } else {
            assert!(matches!(p.device, Device::Cpu));
            assert_eq!(p.description, "CPU");
        }
    }
}
