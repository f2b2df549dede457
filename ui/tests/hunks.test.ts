import { describe, expect, it } from "vitest";
import type { DiffLine, Hunk } from "../src/lib/api";
import { applyChosen } from "../src/lib/hunks";

const ctx = (text: string, no_newline = false): DiffLine => ({ kind: "context", text, no_newline });
const add = (text: string, no_newline = false): DiffLine => ({ kind: "added", text, no_newline });
const del = (text: string, no_newline = false): DiffLine => ({ kind: "removed", text, no_newline });

const numbered = (n: number) => Array.from({ length: n }, (_, i) => `line ${i + 1}\n`).join("");

// The two hunks the engine makes for: line 2 → "line two", line 25 removed, line 31 added
// (see edit/diff.rs::distant_changes_are_separate_hunks_with_correct_headers).
const old30 = numbered(30);
const hunks30: Hunk[] = [
  { number: 1, old_start: 1, old_lines: 5, new_start: 1, new_lines: 5,
    lines: [ctx("line 1"), del("line 2"), add("line two"), ctx("line 3"), ctx("line 4"), ctx("line 5")] },
  { number: 2, old_start: 22, old_lines: 9, new_start: 22, new_lines: 9,
    lines: [ctx("line 22"), ctx("line 23"), ctx("line 24"), del("line 25"), ctx("line 26"), ctx("line 27"),
            ctx("line 28"), ctx("line 29"), ctx("line 30"), add("line 31")] },
];

describe("applyChosen", () => {
  it("applies all, none or some of the hunks", () => {
    const all = old30.replace("line 2\n", "line two\n").replace("line 25\n", "") + "line 31\n";
    expect(applyChosen(old30, hunks30, () => true)).toBe(all);
    expect(applyChosen(old30, hunks30, () => false)).toBe(old30);
    const second = applyChosen(old30, hunks30, (n) => n === 2);
    expect(second).toContain("line 2\n");
    expect(second).not.toContain("line 25\n");
    expect(second.endsWith("line 30\nline 31\n")).toBe(true);
  });

  it("keeps or changes a missing final newline as the hunk says", () => {
    const h: Hunk[] = [{ number: 1, old_start: 1, old_lines: 2, new_start: 1, new_lines: 2,
      lines: [ctx("a"), del("b", true), add("c", true)] }];
    expect(applyChosen("a\nb", h, () => true)).toBe("a\nc");
    expect(applyChosen("a\nb", h, () => false)).toBe("a\nb");
  });

  it("creates a file from nothing and deletes one to nothing", () => {
    const create: Hunk[] = [{ number: 1, old_start: 0, old_lines: 0, new_start: 1, new_lines: 2, lines: [add("x"), add("y")] }];
    expect(applyChosen("", create, () => true)).toBe("x\ny\n");
    const remove: Hunk[] = [{ number: 1, old_start: 1, old_lines: 1, new_start: 0, new_lines: 0, lines: [del("x")] }];
    expect(applyChosen("x\n", remove, () => true)).toBe("");
  });

  it("keeps CRLF line endings of untouched lines", () => {
    const h: Hunk[] = [{ number: 1, old_start: 2, old_lines: 1, new_start: 2, new_lines: 1, lines: [del("b\r"), add("B\r")] }];
    expect(applyChosen("a\r\nb\r\nc\r\n", h, () => true)).toBe("a\r\nB\r\nc\r\n");
  });
});
