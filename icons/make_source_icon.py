"""Draws icons/source.png (1024x1024): Perimeter's mark, a shield-like rounded square with an
inner ring (the perimeter) and a dot (the code that stays inside). Pure standard library, so it
regenerates anywhere; `npx tauri icon icons/source.png -o icons` makes every size from it."""
import math, struct, zlib

N = 1024
BG0, BG1 = (32, 46, 84), (17, 94, 89)      # deep blue to teal, top to bottom
RING, DOT = (236, 242, 248), (94, 234, 212)

def rounded_square_alpha(x, y, r=200, m=40):
    # coverage of a rounded square inset by m with corner radius r (1 px antialias)
    cx = min(max(x, m + r), N - m - r); cy = min(max(y, m + r), N - m - r)
    d = math.hypot(x - cx, y - cy) - r
    return max(0.0, min(1.0, 0.5 - d))

def band(d, lo, hi):
    return max(0.0, min(1.0, min(d - lo, hi - d) + 0.5))

rows = []
for y in range(N):
    row = bytearray([0])
    t = y / (N - 1)
    bg = [round(BG0[i] * (1 - t) + BG1[i] * t) for i in range(3)]
    for x in range(N):
        a = rounded_square_alpha(x + 0.5, y + 0.5)
        d = math.hypot(x + 0.5 - N / 2, y + 0.5 - N / 2)
        ring = band(d, 250, 300)
        dot = max(0.0, min(1.0, 95 - d + 0.5))
        c = bg
        c = [c[i] * (1 - ring) + RING[i] * ring for i in range(3)]
        c = [c[i] * (1 - dot) + DOT[i] * dot for i in range(3)]
        row += bytes([round(c[0]), round(c[1]), round(c[2]), round(255 * a)])
    rows.append(bytes(row))

def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", N, N, 8, 6, 0, 0, 0))
png += chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b"")
open(__file__.replace("make_source_icon.py", "source.png"), "wb").write(png)
