"""Seeing inside: the graph after every pass, the kernel program and the generated source."""
import os


def dump_text(fn):
    parts = []
    for k, (name, seconds, text, changed) in enumerate(getattr(fn, "pass_log", [])):
        what = "changed" if changed else "unchanged"
        parts.append(f"==== graph after pass {k:02d} {name} ({seconds * 1e3:.1f} ms, {what}) ====\n{text}")
    notes = getattr(getattr(fn, "fgraph", None), "fusion_notes", None)
    if notes:
        parts.append("==== fusion decisions ====\n" + "\n".join(notes))
    program = fn.program.describe()  # '' for a target with no kernel program
    if program:
        parts.append("==== kernel program ====\n" + program)
    source = fn.program.source
    if source:
        parts.append("==== generated C ====\n" + source)
    return "\n\n".join(parts) + "\n"


def dump(fn, file=None):
    """Print (or write to `file`) everything graphc knows about a compiled function."""
    text = dump_text(fn)
    if file is None:
        print(text)
    else:
        with open(file, "w") as fh:
            fh.write(text)
    return text


def dump_to_dir(fn, directory):
    """Write one file per stage into `directory` (what GRAPHC_DUMP=dir does for every function)."""
    os.makedirs(directory, exist_ok=True)
    base = os.path.join(directory, fn.name)
    for k, (name, _, text, _) in enumerate(getattr(fn, "pass_log", [])):
        with open(f"{base}.{k:02d}.{name}.txt", "w") as fh:
            fh.write(text + "\n")
        dots = getattr(getattr(fn, "fgraph", None), "pass_dots", None) or []
        dot = dots[k] if k < len(dots) else None
        if dot:
            with open(f"{base}.{k:02d}.{name}.dot", "w") as fh:
                fh.write(dot)
    program = fn.program.describe()
    if program:
        with open(f"{base}.program.txt", "w") as fh:
            fh.write(program + "\n")
    if fn.program.source:
        with open(base + getattr(fn.program, "source_suffix", ".c"), "w") as fh:  # .cu: CUDA
            fh.write(fn.program.source)
