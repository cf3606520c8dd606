"""A small, reusable fuzzer for graphc's file parsers: mutate valid seed files for a bounded time
and require that the parser either returns or raises one of the errors it promises (a
GraphcError), never a raw struct.error / UnicodeDecodeError / KeyError / MemoryError.

    from fuzz_util import fuzz_parser
    fuzz_parser(lambda data: parse_params(data), seeds=[good_bytes])

Deterministic for a given seed (a failure names the case number and saves the input under
tmp_dir, so it can be replayed); GRAPHC_FUZZ_SECONDS stretches the time for a longer local run.
"""
import os
import random
import struct
import time

from graphc.errors import GraphcError

# Values that break length and count fields: zero, one, sign edges, all ones.
_EDGE_INTS = [0, 1, 2, 7, 8, 63, 64, 65, 255, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1,
              2**63 - 1, 2**63, 2**64 - 1]


def _mutate(rng, data, seeds):
    data = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(8)
        pos = rng.randrange(len(data) + 1)
        if kind == 0 and data:  # truncate
            del data[pos:]
        elif kind == 1 and data:  # flip a bit
            p = rng.randrange(len(data))
            data[p] ^= 1 << rng.randrange(8)
        elif kind == 2 and data:  # random byte
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind in (3, 4):  # overwrite a 4- or 8-byte field with an edge value
            width = 4 if kind == 3 else 8
            value = rng.choice(_EDGE_INTS) % (1 << (8 * width))
            data[pos:pos + width] = struct.pack("<I" if width == 4 else "<Q", value)
        elif kind == 5:  # insert random bytes
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif kind == 6 and data:  # duplicate a chunk
            a = rng.randrange(len(data))
            b = min(len(data), a + rng.randint(1, 128))
            data[pos:pos] = data[a:b]
        elif kind == 7:  # splice with another seed
            other = rng.choice(seeds)
            cut = rng.randrange(len(other) + 1)
            data[pos:] = other[cut:]
    return bytes(data)


def fuzz_parser(parse, seeds, allowed=(GraphcError,), seconds=2.0, seed=0, tmp_dir=None,
                min_cases=200):
    """Run parse(data) on mutated seeds for `seconds` (at least min_cases cases). Raises
    AssertionError on the first exception that is not an instance of `allowed`. Returns the
    number of cases run and how many of them parsed."""
    seconds = float(os.environ.get("GRAPHC_FUZZ_SECONDS", seconds))
    seeds = [bytes(s) for s in seeds]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    cases = parsed = 0
    while cases < min_cases or time.monotonic() < deadline:
        data = _mutate(rng, rng.choice(seeds), seeds) if cases else b""
        cases += 1
        try:
            parse(data)
            parsed += 1
        except allowed:
            pass
        except Exception as e:  # noqa: BLE001 - the point: anything else is a finding
            where = ""
            if tmp_dir is not None:
                where = os.path.join(str(tmp_dir), f"fuzz_case_{seed}_{cases}.bin")
                with open(where, "wb") as fh:
                    fh.write(data)
                where = f" (input saved to {where})"
            raise AssertionError(f"fuzz case {cases} (seed {seed}): {type(e).__name__}: {e}"
                                 f"{where}; first bytes {data[:64]!r}") from e
    return cases, parsed
