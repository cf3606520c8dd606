"""User text (variable names, op labels, function names) made safe to paste into C source: the
`c_comment` and `c_string` filters of the C templates. Names come from users and from files
(ONNX, prototxt), so a name is hostile text: `*/ int x; /*` must not end a comment, a newline or
a backslash-newline must not splice lines, and `??/` must not form a trigraph."""

_PRINTABLE = frozenset(range(0x20, 0x7F))
_BROKEN = ("*/", "/*", "??", "//", "\\")  # (what c_comment escapes or breaks in printable text)


def _hex(byte):
    return f"\\x{byte:02x}"


def c_comment(text):
    """`text` as the inside of a /* */ comment: printable ASCII kept (so ordinary names read as
    they are), every other byte as \\xNN text, and the pairs that mean something inside a comment
    (`*/`, `/*`, `??`) broken with a space. The result has no newline, so no backslash in it ends
    a line."""
    text = str(text)
    if text.isascii() and text.isprintable() and not any(p in text for p in _BROKEN):
        return text  # (nothing to escape or break: most labels, ~7 % of a ResNet's render)
    out = []
    for byte in text.encode("utf-8", "backslashreplace"):
        ch = chr(byte)
        if byte not in _PRINTABLE or ch == "\\":
            out.append(_hex(byte))
            continue
        prev = out[-1][-1:] if out else ""
        if (prev, ch) in (("*", "/"), ("/", "*"), ("?", "?"), ("/", "/")):
            out.append(" ")
        out.append(ch)
    return "".join(out)


def c_string(text):
    """`text` as a C string literal (quotes included): printable ASCII kept, quote and backslash
    escaped, every other byte and every '?' (no trigraphs) as an octal escape."""
    out = []
    for byte in str(text).encode("utf-8", "backslashreplace"):
        ch = chr(byte)
        if ch in '"\\':
            out.append("\\" + ch)
        elif byte in _PRINTABLE and ch != "?":
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'
