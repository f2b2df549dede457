// Pure formatting helpers for the views (unit-tested in tests/format.test.ts).

export function bytes(n: number): string {
  if (n >= 1 << 30) return `${(n / (1 << 30)).toFixed(1)} GiB`;
  if (n >= 1 << 20) return `${(n / (1 << 20)).toFixed(0)} MiB`;
  if (n >= 1 << 10) return `${(n / (1 << 10)).toFixed(0)} KiB`;
  return `${n} B`;
}

/** Seconds left at the current rate, as "12 s" or "3 min"; empty when unknown. */
export function eta(done: number, total: number, elapsedMs: number): string {
  if (done <= 0 || total <= done || elapsedMs <= 0) return "";
  return duration(((total - done) * elapsedMs) / done / 1000);
}

/** A number of seconds as "12 s", "3 min" or "2 h 5 min". */
export function duration(secs: number): string {
  if (secs < 90) return `${Math.ceil(secs)} s`;
  const min = Math.ceil(secs / 60);
  return min < 120 ? `${min} min` : `${Math.floor(min / 60)} h ${min % 60} min`;
}

/** Share of the context window a prompt used, 0–100, for the context bar. */
export function windowShare(promptTokens: number, window: number): number {
  if (window <= 0) return 0;
  return Math.min(100, Math.round((promptTokens / window) * 100));
}

export interface CitationRef {
  path: string;
  start?: number;
  end?: number;
}

/** `src/a.rs:10-20` → {path, start, end}; null when it is not a file reference. */
export function parseCitation(text: string): CitationRef | null {
  const m = /^([\w.@+\-/\\]+\.\w{1,10})(?::(\d+)(?:\s*[-–]\s*(\d+))?)?$/.exec(text.trim());
  if (!m) return null;
  const start = m[2] ? Number(m[2]) : undefined;
  const end = m[3] ? Number(m[3]) : start;
  return { path: m[1], start, end };
}

export function timeAgo(unixSeconds: number, now = Date.now() / 1000): string {
  const d = Math.max(0, now - unixSeconds);
  if (d < 60) return "just now";
  if (d < 3600) return `${Math.floor(d / 60)} min ago`;
  if (d < 86400) return `${Math.floor(d / 3600)} h ago`;
  return `${Math.floor(d / 86400)} d ago`;
}
