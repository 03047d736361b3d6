#!/usr/bin/env python3
"""The strip seeds of the OCR fuzz target (tests/fuzz/ocr.rs): grey PNGs of 12 megapixels
(`OCR_MAX_PIXELS`) in absurd shapes: one pixel thin and twelve million long, either way,
and 400 x 30,000 with dark lines every 8 rows (a scrolling screenshot of text at its most
expensive to straighten). zlib at level 9 packs each into a few dozen kilobytes, which is
what makes such a file a cheap attack. Regenerate with this script; the targets use the
files."""
import struct
import zlib


def png(width, height, rows):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")


def one_row(width, dark):
    """One row after its filter byte (none): dark (0) where `dark(x)`, else white."""
    return b"\x00" + bytes(0 if dark(x) else 255 for x in range(width))


SHAPES = {
    "strip_1x12000000.png": (1, 12_000_000, (b"\x00\x00" * 4 + b"\x00\xff" * 996) * 12_000),
    "strip_12000000x1.png": (12_000_000, 1, one_row(12_000_000, lambda x: x % 1000 < 4)),
    "lines_400x30000.png": (400, 30_000, (one_row(400, lambda x: True) * 8 + one_row(400, lambda x: False) * 8) * 1875),
}

for name, (width, height, raw) in SHAPES.items():
    assert len(raw) == (width + 1) * height, name
    with open(name, "wb") as out:
        out.write(png(width, height, raw))
