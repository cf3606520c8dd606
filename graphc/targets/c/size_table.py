"""A program's symbolic workspace offsets as a table that a small interpreter fills at run time
(issue 16: cold compile time).

A net compiled for symbolic shapes places its temporaries at offsets that are sums of slot sizes,
each a Max of Min/floor/ceiling expressions of the dims (a conv's chunk of images, a pooled
height). Printed as C, ResNet-20's offsets and workspace total were ~20 KB of nested
gc_max_i64/gc_floordiv_i64 calls in each translation unit, AlexNet's ~120 KB: 0.36 s of the 1.02 s
gcc took on ResNet-20's first unit and 0.59 of 1.15 s on AlexNet's, for arithmetic run once a
call. Here they are bytecode (a `static const int64_t` array, which gcc reads in no time) that
`graphc_rt_eval_sizes` (the runtime library's: templates/c/_size_table.j2) runs over the dims.

The bytecode mirrors cprinter.int_to_c, operation for operation (the same integer divisions at
the same places, so the same values), with each subexpression that occurs more than once computed
once into a temporary slot. A stack machine: CONST c, DIM i and SLOT j push; ADD, MUL, DIV (C's
truncating `/`, exact where int_to_c prints it), FLOORDIV (gc_floordiv_i64), MAX and MIN pop two
and push one; NEG negates the top; STORE j pops into slot j; TEE j copies the top into slot j."""
import functools

import sympy

# The opcodes; templates/c/_size_table.j2 has the same numbers (a test holds them equal).
OPCODES = {"CONST": 1, "DIM": 2, "SLOT": 3, "ADD": 4, "MUL": 5, "DIV": 6, "FLOORDIV": 7,
           "NEG": 8, "MAX": 9, "MIN": 10, "STORE": 11, "TEE": 12}
STACK_DEPTH = 64  # the interpreter's stack (GC_SZ_STACK)
_BINARY = {"add": "ADD", "mul": "MUL", "div": "DIV", "floordiv": "FLOORDIV", "max": "MAX",
           "min": "MIN"}


class Unsupported(Exception):
    """A size expression of a form int_to_c prints but the table does not take (the program then
    keeps its offsets as C)."""


@functools.lru_cache(maxsize=8192)
def _tree(e):
    """A size expression as nested tuples, decomposed exactly as cprinter._size_to_c prints it:
    ("c", value), ("d", dim name), ("neg", x), (binary op, a, b)."""
    if e.is_Integer:
        return ("c", int(e))
    if e.is_Symbol:
        return ("d", e.name)
    if e.is_Add:
        return _fold("add", e.args)
    if e.is_Mul:
        if not any(a.is_Rational and not a.is_Integer for a in e.args):
            return _fold("mul", e.args)
        num, den = sympy.fraction(sympy.together(e))
        if den != 1:
            return ("div", _tree(sympy.expand(num)), _tree(den))
        return _fold("mul", e.args)
    if isinstance(e, (sympy.floor, sympy.ceiling)):
        num, den = sympy.fraction(sympy.together(e.args[0]))
        num, den = _tree(sympy.expand(num)), _tree(den)
        if isinstance(e, sympy.floor):
            return ("floordiv", num, den)
        return ("neg", ("floordiv", ("neg", num), den))
    if isinstance(e, sympy.Max):
        return _fold("max", e.args)
    if isinstance(e, sympy.Min):
        return _fold("min", e.args)
    if e.is_Pow and e.args[1].is_Integer and e.args[1] > 0:
        return _fold("mul", [e.args[0]] * int(e.args[1]))
    raise Unsupported(f"no table form for size expression {e}")


def _fold(op, args):
    out = _tree(sympy.sympify(args[0]))
    for a in args[1:]:
        out = (op, out, _tree(sympy.sympify(a)))
    return out


def _as_tree(value):
    return ("c", int(value)) if isinstance(value, (int, sympy.Integer)) else _tree(sympy.sympify(value))


class SizeTable:
    """The bytecode (`code`), how many slots it fills (`n_slots`: the named entries first, then
    temporaries), each symbolic workspace offset's slot (`slot_of`: {offset: index}) and the
    slot of the workspace's total size (`total`, None when that is a constant)."""

    def __init__(self, code, n_slots, slot_of, total):
        self.code, self.n_slots, self.slot_of, self.total = code, n_slots, slot_of, total

    @property
    def code_text(self):
        return ", ".join(map(str, self.code))


def workspace_table(program):
    """The SizeTable of a program's symbolic workspace offsets and total (Program.workspace_slots:
    each offset the one below plus that slot's size), or None when they are all constants or a
    size has a form the table does not take."""
    slots = getattr(program, "workspace_slots", ())
    symbolic = lambda v: isinstance(v, sympy.Basic) and not v.is_Number  # noqa: E731
    if not any(symbolic(o) for o, _ in slots) and not symbolic(program.workspace_bytes):
        return None
    dims = {s.name: i for i, s in enumerate(program.dim_symbols)}
    entries, slot_of, prev = [], {}, None  # prev: the tree of the offset below and its size
    try:
        for offset, size in slots:
            if symbolic(offset):
                slot_of[offset] = len(entries)
                entries.append(("add", prev[0], _as_tree(prev[1])) if prev else _as_tree(offset))
                prev = (("slot", slot_of[offset]), size)
            else:
                prev = (("c", int(offset)), size)
        total = None
        if symbolic(program.workspace_bytes):
            total = len(entries)
            entries.append(("add", prev[0], _as_tree(prev[1])) if prev
                           else _as_tree(program.workspace_bytes))
        code, n_slots = _compile(entries, dims)
    except Unsupported:
        return None
    return SizeTable(code, n_slots, slot_of, total)


def _compile(entries, dims):
    """Bytecode that stores entry j's value in slot j; (code, slots used)."""
    uses = {}

    def count(node):
        uses[node] = uses.get(node, 0) + 1
        if uses[node] == 1 and node[0] not in ("c", "d", "slot"):
            for child in node[1:]:
                count(child)
    for entry in entries:
        count(entry)
    code, temp_of, depth = [], {}, [0, 0]  # (depth now, deepest)
    n_slots = [len(entries)]

    def push():
        depth[0] += 1
        depth[1] = max(depth[1], depth[0])

    def emit(node):
        op = node[0]
        if node in temp_of:
            code.extend((OPCODES["SLOT"], temp_of[node]))
            push()
            return
        if op == "c":
            code.extend((OPCODES["CONST"], node[1]))
            push()
        elif op == "d":
            if node[1] not in dims:
                raise Unsupported(f"size expression over {node[1]}, which is not a dim of the program")
            code.extend((OPCODES["DIM"], dims[node[1]]))
            push()
        elif op == "slot":
            code.extend((OPCODES["SLOT"], node[1]))
            push()
        elif op == "neg":
            emit(node[1])
            code.append(OPCODES["NEG"])
        else:
            emit(node[1])
            emit(node[2])
            code.append(OPCODES[_BINARY[op]])
            depth[0] -= 1
        if uses.get(node, 0) > 1 and op not in ("c", "d", "slot"):
            temp_of[node] = n_slots[0]
            n_slots[0] += 1
            code.extend((OPCODES["TEE"], temp_of[node]))
    for j, entry in enumerate(entries):
        emit(entry)
        code.extend((OPCODES["STORE"], j))
        depth[0] -= 1
    if depth[1] > STACK_DEPTH:
        raise Unsupported(f"a size expression {depth[1]} deep (the interpreter holds {STACK_DEPTH})")
    return code, n_slots[0]


def evaluate(code, dims, n_slots):
    """The interpreter in Python (tests compare it with the C one and with int_to_c's values)."""
    names = {v: k for k, v in OPCODES.items()}
    slots, stack, pc = [0] * n_slots, [], 0
    while pc < len(code):
        op = names[code[pc]]
        pc += 1
        if op in ("CONST", "DIM", "SLOT", "STORE", "TEE"):
            arg = code[pc]
            pc += 1
            if op == "CONST":
                stack.append(arg)
            elif op == "DIM":
                stack.append(dims[arg])
            elif op == "SLOT":
                stack.append(slots[arg])
            elif op == "STORE":
                slots[arg] = stack.pop()
            else:
                slots[arg] = stack[-1]
        elif op == "NEG":
            stack.append(-stack.pop())
        else:
            b, a = stack.pop(), stack.pop()
            stack.append(_apply(op, a, b))
    return slots


def _apply(op, a, b):
    if op == "ADD":
        return a + b
    if op == "MUL":
        return a * b
    if op == "DIV":  # C's: truncated toward zero
        q = abs(a) // abs(b)
        return q if (a < 0) == (b < 0) else -q
    if op == "FLOORDIV":  # gc_floordiv_i64 (b is never 0 here: a size's denominator)
        return a // b
    return max(a, b) if op == "MAX" else min(a, b)
