// What a file would read with only the chosen hunks applied, so that the right side of the
// side-by-side view follows the checkboxes. The engine does the real apply on disk
// (edit/diff.rs::apply_selected); this one is for display and is unit-tested (tests/hunks.test.ts).
import type { Hunk } from "./api";

/** The lines of `text`, each with its line break (the last one may have none). */
function linesWithEndings(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/**
 * `oldText` with the hunks whose numbers `chosen` accepts applied and the others left out.
 * Hunks come in file order and do not overlap, as the engine makes them.
 */
export function applyChosen(oldText: string, hunks: Hunk[], chosen: (n: number) => boolean): string {
  const old = linesWithEndings(oldText);
  let out = "";
  let next = 0; // index in `old` of the first line not yet copied
  for (const h of hunks) {
    if (!chosen(h.number)) continue;
    // A unified diff numbers an empty old side by the line before it.
    const start = h.old_lines === 0 ? h.old_start : h.old_start - 1;
    while (next < start) out += old[next++];
    for (const l of h.lines) {
      if (l.kind === "added") out += l.text + (l.no_newline ? "" : "\n");
      else if (l.kind === "context") out += old[next++];
      else next++;
    }
  }
  while (next < old.length) out += old[next++];
  return out;
}
