// Minimal window: shows what the engine reports about this machine.
const { invoke } = window.__TAURI__.core;
const gib = (b) => (b / 2 ** 30).toFixed(1) + " GiB";

async function showHardware() {
  const el = document.getElementById("hardware");
  try {
    const { hardware: hw, assessment: a } = await invoke("hardware_summary");
    const gpus = hw.gpus.length ? hw.gpus.map((g) => `${g.vendor} ${g.name}`).join(", ") : "none";
    const rows = a.models
      .map((m) => `<tr class="${a.pick && a.pick.id === m.id ? "pick" : ""}"><td>${m.id}</td><td>${gib(m.need_bytes)}</td><td>${m.class.replace("_", " ")}</td></tr>`)
      .join("");
    el.innerHTML = `<p>${hw.cpu.model} · ${hw.cpu.logical_cores} threads · ${gib(hw.ram_total_bytes)} RAM · GPU: ${gpus}</p>
      <p>Recommended: <strong>${a.pick ? a.pick.id : "none"}</strong></p>
      <table><thead><tr><th>Model</th><th>Needs</th><th>Fit</th></tr></thead><tbody>${rows}</tbody></table>`;
  } catch (e) {
    el.textContent = "Could not read this machine: " + e;
  }
}
showHardware();
