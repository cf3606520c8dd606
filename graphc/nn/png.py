"""A tiny PNG writer (zlib + struct, no dependency) and a raster canvas with lines and a 3x5
pixel font: enough to draw training curves and filter grids when matplotlib is not installed.

    write_png("out.png", img)      # img: uint8 (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA
    c = Canvas(640, 400); c.line(0, 0, 100, 50, (255, 0, 0)); c.text(10, 10, "LOSS", (0, 0, 0))
    c.save("plot.png")
"""
import os
import struct
import zlib

import numpy as np

__all__ = ["write_png", "read_png", "Canvas", "FONT"]


def _chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def encode_png(img):
    img = np.asarray(img)
    if img.dtype != np.uint8:
        if img.dtype.kind == "f":
            img = np.clip(np.round(img * 255.0), 0, 255)
        img = img.astype(np.uint8)
    if img.ndim == 2:
        color_type, channels = 0, 1
    elif img.ndim == 3 and img.shape[2] in (1, 3, 4):
        channels = img.shape[2]
        color_type = {1: 0, 3: 2, 4: 6}[channels]
    else:
        raise ValueError(f"write_png: expected (H, W), (H, W, 3) or (H, W, 4), got {img.shape}")
    h, w = img.shape[:2]
    if h < 1 or w < 1:
        raise ValueError(f"write_png: empty image {img.shape}")
    rows = np.ascontiguousarray(img).reshape(h, w * channels)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter 0
    ihdr = struct.pack(">IIBBBBB", w, h, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 6))
            + _chunk(b"IEND", b""))


def write_png(path, img):
    """Write an image as PNG (atomically: tmp file + os.replace). Floats are taken in [0, 1]."""
    data = encode_png(img)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return path


def read_png(path):
    """Read back a PNG written by write_png (8-bit, non-interlaced; filter types 0-4)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (n,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        if zlib.crc32(kind + body) & 0xFFFFFFFF != struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])[0]:
            raise ValueError(f"{path}: bad CRC in chunk {kind!r}")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    w, h, depth, color_type, _, _, interlace = header
    if depth != 8 or interlace:
        raise ValueError(f"{path}: only 8-bit non-interlaced PNGs are supported")
    ch = {0: 1, 2: 3, 4: 2, 6: 4}[color_type]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + w * ch)
    out = np.zeros((h, w * ch), np.int32)
    prev = np.zeros(w * ch, np.int32)
    for y in range(h):
        ftype, line = raw[y, 0], raw[y, 1:].astype(np.int32)
        cur = np.zeros_like(line)
        for x in range(w * ch):
            a = cur[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    img = out.astype(np.uint8)
    return img.reshape(h, w) if ch == 1 else img.reshape(h, w, ch)


# A 3x5 pixel font: each glyph is 5 rows of 3 columns ('#' = ink). Lower case prints as upper.
_GLYPHS = {
    "0": ("###", "#.#", "#.#", "#.#", "###"), "1": (".#.", "##.", ".#.", ".#.", "###"),
    "2": ("###", "..#", "###", "#..", "###"), "3": ("###", "..#", ".##", "..#", "###"),
    "4": ("#.#", "#.#", "###", "..#", "..#"), "5": ("###", "#..", "###", "..#", "###"),
    "6": ("###", "#..", "###", "#.#", "###"), "7": ("###", "..#", "..#", ".#.", ".#."),
    "8": ("###", "#.#", "###", "#.#", "###"), "9": ("###", "#.#", "###", "..#", "###"),
    "A": (".#.", "#.#", "###", "#.#", "#.#"), "B": ("##.", "#.#", "##.", "#.#", "##."),
    "C": (".##", "#..", "#..", "#..", ".##"), "D": ("##.", "#.#", "#.#", "#.#", "##."),
    "E": ("###", "#..", "##.", "#..", "###"), "F": ("###", "#..", "##.", "#..", "#.."),
    "G": (".##", "#..", "#.#", "#.#", ".##"), "H": ("#.#", "#.#", "###", "#.#", "#.#"),
    "I": ("###", ".#.", ".#.", ".#.", "###"), "J": ("..#", "..#", "..#", "#.#", ".#."),
    "K": ("#.#", "#.#", "##.", "#.#", "#.#"), "L": ("#..", "#..", "#..", "#..", "###"),
    "M": ("#.#", "###", "###", "#.#", "#.#"), "N": ("##.", "#.#", "#.#", "#.#", "#.#"),
    "O": (".#.", "#.#", "#.#", "#.#", ".#."), "P": ("##.", "#.#", "##.", "#..", "#.."),
    "Q": (".#.", "#.#", "#.#", "##.", ".##"), "R": ("##.", "#.#", "##.", "#.#", "#.#"),
    "S": (".##", "#..", ".#.", "..#", "##."), "T": ("###", ".#.", ".#.", ".#.", ".#."),
    "U": ("#.#", "#.#", "#.#", "#.#", "###"), "V": ("#.#", "#.#", "#.#", "#.#", ".#."),
    "W": ("#.#", "#.#", "###", "###", "#.#"), "X": ("#.#", "#.#", ".#.", "#.#", "#.#"),
    "Y": ("#.#", "#.#", ".#.", ".#.", ".#."), "Z": ("###", "..#", ".#.", "#..", "###"),
    ".": ("...", "...", "...", "...", ".#."), "-": ("...", "...", "###", "...", "..."),
    ":": ("...", ".#.", "...", ".#.", "..."), "%": ("#.#", "..#", ".#.", "#..", "#.#"),
    "/": ("..#", "..#", ".#.", "#..", "#.."), "(": (".#.", "#..", "#..", "#..", ".#."),
    ")": (".#.", "..#", "..#", "..#", ".#."), " ": ("...", "...", "...", "...", "..."),
    "_": ("...", "...", "...", "...", "###"), "=": ("...", "###", "...", "###", "..."),
    "+": ("...", ".#.", "###", ".#.", "..."), ",": ("...", "...", "...", ".#.", "#.."),
    "#": ("#.#", "###", "#.#", "###", "#.#"), "?": ("##.", "..#", ".#.", "...", ".#."),
}
FONT = {ch: np.array([[c == "#" for c in row] for row in rows], bool)
        for ch, rows in _GLYPHS.items()}


class Canvas:
    """An RGB raster, origin top-left, with clipped drawing primitives."""

    def __init__(self, width, height, background=(255, 255, 255)):
        self.w, self.h = int(width), int(height)
        self.img = np.empty((self.h, self.w, 3), np.uint8)
        self.img[:] = background

    def pixel(self, x, y, color):
        if 0 <= x < self.w and 0 <= y < self.h:
            self.img[y, x] = color

    def rect(self, x0, y0, x1, y1, color, fill=True):
        x0, x1 = sorted((int(x0), int(x1)))
        y0, y1 = sorted((int(y0), int(y1)))
        xa, xb, ya, yb = max(x0, 0), min(x1, self.w - 1), max(y0, 0), min(y1, self.h - 1)
        if xa > xb or ya > yb:
            return
        if fill:
            self.img[ya:yb + 1, xa:xb + 1] = color
        else:
            self.line(x0, y0, x1, y0, color)
            self.line(x0, y1, x1, y1, color)
            self.line(x0, y0, x0, y1, color)
            self.line(x1, y0, x1, y1, color)

    def line(self, x0, y0, x1, y1, color, width=1):
        """Bresenham; width > 1 stamps a small square at each point."""
        x0, y0, x1, y1 = int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1))
        dx, dy = abs(x1 - x0), -abs(y1 - y0)
        sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
        err = dx + dy
        r0, r1 = -((width - 1) // 2), width // 2
        for _ in range(dx - dy + 1):
            if width == 1:
                self.pixel(x0, y0, color)
            else:
                self.rect(x0 + r0, y0 + r0, x0 + r1, y0 + r1, color)
            if x0 == x1 and y0 == y1:
                break
            e2 = 2 * err
            if e2 >= dy:
                err += dy
                x0 += sx
            if e2 <= dx:
                err += dx
                y0 += sy

    def text(self, x, y, s, color=(0, 0, 0), scale=2, anchor="left"):
        """Draw s with the 3x5 font (each glyph 4*scale wide with its gap); anchor left,
        center or right at x; y is the top."""
        s = str(s).upper()
        width = self.text_width(s, scale)
        if anchor == "center":
            x -= width // 2
        elif anchor == "right":
            x -= width
        for k, ch in enumerate(s):
            glyph = FONT.get(ch, FONT["?"])
            gx = int(x) + k * 4 * scale
            ys, xs = np.nonzero(glyph)
            for gy_, gx_ in zip(ys, xs):
                self.rect(gx + gx_ * scale, int(y) + gy_ * scale,
                          gx + gx_ * scale + scale - 1, int(y) + gy_ * scale + scale - 1, color)
        return width

    @staticmethod
    def text_width(s, scale=2):
        return max(len(str(s)) * 4 * scale - scale, 0)

    def paste(self, x, y, img):
        img = np.asarray(img, np.uint8)
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        h, w = img.shape[:2]
        xa, ya = max(int(x), 0), max(int(y), 0)
        xb, yb = min(int(x) + w, self.w), min(int(y) + h, self.h)
        if xa < xb and ya < yb:
            self.img[ya:yb, xa:xb] = img[ya - int(y):yb - int(y), xa - int(x):xb - int(x)]

    def save(self, path):
        return write_png(path, self.img)
