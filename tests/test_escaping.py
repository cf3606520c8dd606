"""User strings in generated C (issue 13, item 17): variable, shared-variable and function names
are pasted into comments and error-message literals of the C and AOT sources, escaped by the
c_comment / c_string filters, so a hostile name neither breaks compilation nor runs its own C."""
import os
import re
import subprocess

import numpy as np
import pytest

import graphc as G
from graphc.targets.c.c_escape import c_comment, c_string

HOSTILE = ["*/ int planted; /*", "a\nb", "ends with \\", "x\\\n*/ int planted2; /*", "??/",
           "??/\n*/ int planted3; /*", "q\"uote'", "tab\there", "é ünï", "//", "/*", "**//**",
           "\x00nul", "?\\?/"]


def _syntax_check(tmp_path, source, name="t.c"):
    """gcc with trigraphs on and comment warnings as errors: a comment that ends early, a line
    splice or a trigraph in a user string fails here."""
    path = tmp_path / name
    path.write_text(source)
    proc = subprocess.run(["gcc", "-fsyntax-only", "-std=c99", "-trigraphs", "-Wall", "-Werror",
                           "-Wno-unused-variable", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_filters_keep_hostile_text_inert(tmp_path):
    lines = ["#include <string.h>", "int check(void) {", "    int bad = 0;"]
    for k, text in enumerate(HOSTILE):
        lines.append(f"    /* {c_comment(text)} */")
        lines.append(f"    // {c_comment(text)}")
        lines.append(f"    static const char s{k}[] = {c_string(text)};")
        raw = text.encode("utf-8")
        lines.append(f"    bad |= sizeof s{k} != {len(raw) + 1} || memcmp(s{k}, {c_string(text)}, "
                     f"{len(raw)}) != 0;")
    lines += ["    return bad;", "}", ""]
    _syntax_check(tmp_path, "\n".join(lines))


def test_ordinary_names_read_as_they_are():
    assert c_comment("x") == "x" and c_comment("dense/W * 2 (in place)") == "dense/W * 2 (in place)"
    assert c_string("AdvancedSubtensor") == '"AdvancedSubtensor"'


@pytest.mark.parametrize("name", ["*/ int planted; /*", "x\\\n*/ int planted2; /*", "a\nb\\"])
def test_hostile_names_compile_and_run(name):
    x = G.tensor(name, (None,), "float32")
    i = G.tensor(name + "i", (None,), "int64")
    w = G.shared(np.ones(3, "float32"), name=name + "w")
    f = G.function([x, i], [x[i] * 2, w.sum()], updates=[(w, w + 1)], name=name, backend="c")
    got = f(np.arange(3, dtype="float32"), np.array([0, 2]))
    np.testing.assert_array_equal(got[0], [0, 4])
    assert float(got[1]) == 3 and float(w.get_value()[0]) == 2
    # outside string literals (where `*/` is harmless) no hostile text survives
    code = re.sub(r'"(\\.|[^"\\\n])*"', '""', f.program.source)
    assert "*/ int planted" not in code and "\n*/" not in code
    with pytest.raises(G.RuntimeCheckError):
        f(np.arange(3, dtype="float32"), np.array([5]))


def test_hostile_names_in_aot_sources(tmp_path):
    name = "??/\n*/ int planted; /*"
    x = G.tensor(name, (None,), "float32")
    w = G.shared(np.ones(3, "float32"), name=name + "w")
    f = G.function([x], (x * 2).sum() + w.sum(), updates=[(w, w + 1)], name="f")
    out = tmp_path / "lib"
    export = G.aot.export({"f": f}, str(out), name="hostile")
    header = open(export.header).read()
    assert "*/ int planted" not in header and "??/" not in header
    _syntax_check(tmp_path, f'#include "{export.header}"\nint main(void) {{ return 0; }}\n',
                  "use.c")
    source = open(os.path.join(str(out), "src", "hostile.c")).read()
    # (in a string literal the name is octal-escaped: "\077\077/\012*/ int planted...")
    assert "\n*/ int planted" not in source and "??/" not in source
