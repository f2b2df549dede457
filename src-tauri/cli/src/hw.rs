//! `perimeter hw`: the hardware probe, each catalog model's fit, and the pick.

use std::process::ExitCode;

use clap::Args;
use perimeter_engine::hardware::HardwareProfile;
use perimeter_engine::models::{assess, Catalog};
use perimeter_engine::paths;
use serde_json::json;

use crate::progress::size;

#[derive(Args)]
pub struct HwArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: HwArgs) -> anyhow::Result<ExitCode> {
    let hw = HardwareProfile::probe().with_memory_bandwidth(&paths::data_dir());
    let catalog = Catalog::builtin();
    let a = assess(&hw, &catalog);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json!({ "hardware": hw, "assessment": a }))?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("OS        {} ({})", hw.os, hw.arch);
    println!(
        "CPU       {} — {} cores / {} threads, {}",
        hw.cpu.model, hw.cpu.physical_cores, hw.cpu.logical_cores, hw.cpu.simd_level
    );
    println!("RAM       {} total, {} available", size(hw.ram_total_bytes), size(hw.ram_available_bytes));
    if hw.gpus.is_empty() {
        println!("GPU       none detected");
    }
    for g in &hw.gpus {
        let vram = g.vram_total_bytes.map(size).unwrap_or_else(|| "shared memory".into());
        println!("GPU       {} {} — {}", g.vendor, g.name, vram);
    }
    if let Some(bw) = hw.memory_read_bytes_per_s {
        println!("Memory    reads {:.1} GB/s (measured once per machine)", bw as f64 / 1e9);
    }
    println!("Engine    backends usable here: {}", hw.inference_backends.join(", "));
    if let Some(why) = perimeter_engine::inference::cuda_unusable() {
        println!("          no CUDA: {why}");
    }
    if let Some(note) = &a.gpu_note {
        println!("          {note}");
    }
    println!();
    println!("{:<40} {:>10} {:>10} {:>9}  fit", "model", "file", "needs", "decode");
    for (m, f) in catalog.models.iter().zip(&a.models) {
        let mark = if a.pick.as_ref().is_some_and(|p| p.id == m.id) { "  ← recommended" } else { "" };
        let speed = f.cpu_tokens_per_s.map_or("—".to_string(), |t| format!("~{t:.0} tok/s"));
        println!("{:<40} {:>10} {:>10} {:>9}  {}{}", m.id, size(m.size_bytes), size(f.need_bytes), speed, f.class.label(), mark);
    }
    println!();
    println!(
        "decode: expected tokens/s on this CPU; the pick is the largest model at {:.0} tokens/s or more",
        a.interactive_tokens_per_s
    );
    println!();
    match (&a.pick, &a.no_pick_reason) {
        (Some(p), _) => println!("Recommended: {} — {}", p.id, p.reason),
        (None, Some(why)) => println!("No recommendation: {why}"),
        (None, None) => {}
    }
    Ok(ExitCode::SUCCESS)
}
