import { describe, expect, it } from "vitest";
import { bytes, duration, eta, parseCitation, timeAgo, windowShare } from "../src/lib/format";

describe("format", () => {
  it("sizes", () => {
    expect(bytes(512)).toBe("512 B");
    expect(bytes(98 * 1024 * 1024)).toBe("98 MiB");
    expect(bytes(4.5 * 1024 ** 3)).toBe("4.5 GiB");
  });
  it("durations in the unit a person reads", () => {
    expect(duration(12.2)).toBe("13 s");
    expect(duration(600)).toBe("10 min");
    expect(duration(7500)).toBe("2 h 5 min");
  });

  it("eta from rate so far", () => {
    expect(eta(50, 100, 10_000)).toBe("10 s");
    expect(eta(10, 100, 60_000)).toBe("9 min");
    expect(eta(0, 100, 1000)).toBe("");
    expect(eta(100, 100, 1000)).toBe("");
  });
  it("context bar share is capped", () => {
    expect(windowShare(512, 2048)).toBe(25);
    expect(windowShare(5000, 2048)).toBe(100);
    expect(windowShare(1, 0)).toBe(0);
  });
  it("citations", () => {
    expect(parseCitation("src/lib.rs:10-20")).toEqual({ path: "src/lib.rs", start: 10, end: 20 });
    expect(parseCitation("a.py:7")).toEqual({ path: "a.py", start: 7, end: 7 });
    expect(parseCitation("README.md")).toEqual({ path: "README.md", start: undefined, end: undefined });
    expect(parseCitation("not a path")).toBeNull();
  });
  it("relative times", () => {
    expect(timeAgo(1000, 1030)).toBe("just now");
    expect(timeAgo(1000, 1000 + 7200)).toBe("2 h ago");
  });
});
