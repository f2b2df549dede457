//! The app's commands: each unpacks its arguments and calls the engine.

use perimeter_engine::hardware::HardwareProfile;
use perimeter_engine::models::{assess, Assessment, Catalog};
use serde::Serialize;

#[derive(Serialize)]
pub struct HardwareSummary {
    hardware: HardwareProfile,
    assessment: Assessment,
}

/// The hardware probe and each catalog model's fit. Async so the probe runs off the UI thread.
#[tauri::command]
pub async fn hardware_summary() -> HardwareSummary {
    let hardware = HardwareProfile::probe();
    let assessment = assess(&hardware, &Catalog::builtin());
    HardwareSummary { hardware, assessment }
}
