"""The build cache is trusted only when private, its records are data, its libraries are hashed
and rebuilt when damaged, dropped functions unload their libraries, and a warm compile shows
its own names."""
import gc
import json
import os
import pickle
import random
import stat

import numpy as np
import pytest

import graphc as G
from graphc.dump import dump_text
from graphc.targets.c import artifact_record, cache, cache_trust


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setattr(G.config, "cache_dir", str(d))
    return d


def _fn(k=1.5, names=("x",)):
    x = G.vector(names[0])
    return G.function([x], G.exp(x) * k + 0.25)


def _check(f, k=1.5):
    np.testing.assert_allclose(f(np.zeros(3, "float32")), k + 0.25, rtol=1e-6)


def _artifacts(cache_dir):
    return sorted((cache_dir / "artifacts").rglob("*.json"))


def _drop(*fns):
    for f in fns:
        del f
    gc.collect()


# -- a private cache --------------------------------------------------------------------------

def test_cache_directories_are_created_private(cache_dir):
    _check(_fn())
    dirs = [cache_dir] + [p for p in cache_dir.rglob("*") if p.is_dir()]
    assert {p.name for p in cache_dir.iterdir()} >= {"artifacts"}
    for d in dirs:
        assert stat.S_IMODE(d.stat().st_mode) == 0o700, d
    for f in cache_dir.rglob("*"):
        if f.is_file():
            assert not f.stat().st_mode & 0o022, f


@pytest.mark.parametrize("how", ["group-writable", "world-writable", "other-owner"])
def test_an_unsafe_cache_directory_is_refused(cache_dir, how):
    cache_dir.mkdir()
    if how == "other-owner":
        if os.geteuid() != 0:
            pytest.skip("needs root to give a directory away")
        os.chown(cache_dir, 4242, 4242)
    else:
        cache_dir.chmod(0o770 if how == "group-writable" else 0o777)
    with pytest.raises(G.GraphcError, match="GRAPHC_CACHE_DIR") as e:
        _fn()
    assert str(cache_dir) in str(e.value)
    assert not (cache_dir / "artifacts").exists()  # nothing was read or written there


def test_a_cache_directory_that_is_a_file_or_under_one_is_refused(tmp_path, monkeypatch):
    a_file = tmp_path / "file"
    a_file.write_text("")
    for path in (a_file, a_file / "cache"):
        monkeypatch.setattr(G.config, "cache_dir", str(path))
        with pytest.raises(cache_trust.CacheDirError, match="GRAPHC_CACHE_DIR"):
            _fn()


def test_an_unwritable_cache_directory_is_refused(cache_dir):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    cache_dir.mkdir(mode=0o500)
    with pytest.raises(cache_trust.CacheDirError, match="not writable"):
        _fn()


def test_a_cache_path_with_a_dollar_is_refused(tmp_path, monkeypatch):
    # The dynamic loader would expand $ORIGIN in the runtime library's path a program records.
    monkeypatch.setattr(G.config, "cache_dir", str(tmp_path / "$ORIGIN" / "cache"))
    with pytest.raises(cache_trust.CacheDirError, match=r"'\$'"):
        _fn()


@pytest.mark.parametrize("how", ["group-writable", "other-owner"])
def test_a_planted_record_is_refused_not_believed(cache_dir, how):
    _check(_fn())
    (record,) = _artifacts(cache_dir)
    if how == "other-owner":
        if os.geteuid() != 0:
            pytest.skip("needs root to give a file away")
        os.chown(record, 4242, 4242)
    else:
        record.chmod(0o664)
    with pytest.raises(cache_trust.CacheDirError, match="GRAPHC_CACHE_DIR"):
        _fn()


def test_a_pickle_in_the_record_is_never_unpickled(cache_dir, tmp_path):
    _check(_fn())
    (record,) = _artifacts(cache_dir)
    marker = tmp_path / "pwned"

    class Plant:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    record.write_bytes(pickle.dumps({"lib_path": "x", "payload": Plant()}))
    f = _fn()  # not a record: compiled again, and the record replaced
    _check(f)
    assert not marker.exists()
    assert json.loads(record.read_text())["format"] == artifact_record.FORMAT


@pytest.mark.parametrize("text", [b"", b"[1, 2]", b'{"format": 1}', b"\xff\xfe garbage",
                                  b'{"format": 1, "lib_key": "../../evil"}', b"[" * 100000])
def test_a_record_of_the_wrong_shape_is_a_miss(cache_dir, text):
    _check(_fn())
    (record,) = _artifacts(cache_dir)
    record.write_bytes(text)
    f = _fn()
    assert not f.timings.get("artifact_hit")
    _check(f)


def test_record_parser_fuzz(cache_dir):
    """Truncated and bit-flipped records: decode returns a record or None, never raises."""
    _check(_fn())
    good = _artifacts(cache_dir)[0].read_bytes()
    assert artifact_record.decode(good) is not None
    rng = random.Random(0)
    for _ in range(400):
        data = bytearray(good[:rng.randrange(len(good) + 1)])
        for _ in range(rng.randrange(4)):
            if data:
                data[rng.randrange(len(data))] = rng.randrange(256)
        artifact_record.decode(bytes(data))
    for tree in (["Pow", ["int", 10], ["int", 10 ** 9]], ["eval", ["sym", "x"]],
                 ["sym", "__import__('os').system('true')"], [["int", 1]], ["int", 2 ** 70]):
        bad = json.loads(good)
        bad["layout"]["out_specs"] = [["float32", [["expr", tree]]]]
        assert artifact_record.decode(json.dumps(bad).encode()) is None
    bad = json.loads(good)
    bad["layout"]["dim_names"] = ["__import__('os')"]  # compiled to Python by lambdify
    assert artifact_record.decode(json.dumps(bad).encode()) is None


# -- hashed libraries -------------------------------------------------------------------------

def _library_of(f):
    path = f.program.lib_path
    _drop(f)
    return path


@pytest.mark.parametrize("damage", ["truncate", "trap", "no-record"])
def test_a_damaged_library_is_rebuilt(cache_dir, damage):
    lib = _library_of(_fn(2.5))
    data = open(lib, "rb").read()
    if damage == "trap":  # code overwritten with int3: ran, it stopped the process (SIGTRAP)
        with open(lib, "r+b") as fh:
            fh.seek(len(data) // 3)
            fh.write(b"\xcc" * (len(data) // 3))
    else:
        with open(lib, "r+b") as fh:
            fh.truncate(len(data) // 2)
    if damage == "no-record":  # found by its source key (another name, another process)
        for record in _artifacts(cache_dir):
            record.unlink()
    f = _fn(2.5)
    assert not f.timings.get("artifact_hit")
    assert f.program.lib_path == lib and open(lib, "rb").read() == data
    _check(f, 2.5)
    assert _fn(2.5).timings.get("artifact_hit")  # and the next compile is warm again


def test_a_library_without_its_hash_is_rebuilt(cache_dir):
    lib = _library_of(_fn(3.5))
    os.unlink(lib[:-len(".so")] + ".sha256")
    for record in _artifacts(cache_dir):
        record.unlink()
    f = _fn(3.5)
    assert f.timings["cache_hit"] is False
    _check(f, 3.5)


def test_source_key_hit_checks_the_hash(cache_dir):
    src = ["int gc_probe(void) { return 7; }\n"]
    path, hit, digest = cache.cached_library(src, link=())
    assert not hit
    assert cache.cached_library(src, link=()) == (path, True, digest)
    with open(path, "r+b") as fh:
        fh.truncate(10)
    path2, hit, digest2 = cache.cached_library(src, link=())
    assert (path2, hit, digest2) == (path, False, digest)


# -- unloading --------------------------------------------------------------------------------

def _mapped(prefix):
    with open("/proc/self/maps") as fh:
        return [line for line in fh if prefix in line]


def test_dropped_functions_unload_their_libraries(cache_dir):
    rounds = []
    for _ in range(6):
        fns = [_fn(1.0 + k) for k in range(3)]
        for k, f in enumerate(fns):
            _check(f, 1.0 + k)
        assert _mapped(str(cache_dir))  # loaded while in use
        _drop(*fns)
        del fns, f
        gc.collect()
        rounds.append(len(_mapped(str(cache_dir))))
    assert rounds == [0] * 6, rounds


def test_a_function_keeps_its_library_while_another_is_dropped(cache_dir):
    f, g = _fn(4.5), _fn(4.5)
    assert f.program.lib_path == g.program.lib_path
    _drop(f)
    del f
    gc.collect()
    _check(g, 4.5)


# -- a warm compile shows its own names -------------------------------------------------------

def _named(prefix):
    x = G.matrix(f"{prefix}_input", shape=(None, 4))
    w = G.shared(np.ones((4,), "float32"), name=f"{prefix}_weight")
    out = G.tanh(G.dot(x, w)) * 2.0
    return G.function([x], out, updates={w: w * 0.5}, name=f"{prefix}_fn")


def test_a_warm_compile_shows_its_own_names(cache_dir):
    first = _named("alpha")
    second = _named("omega")
    assert second.timings.get("artifact_hit")
    text = dump_text(second)
    assert "omega_input" in text and "omega_weight" in text
    assert "alpha_" not in text
    assert "omega_weight" in second.program.source and "alpha_" not in second.program.source
    assert "omega_input" in second.program.describe()
    X = np.ones((2, 4), "float32")
    np.testing.assert_allclose(second(X), first(X), rtol=1e-6)
