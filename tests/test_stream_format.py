"""Stream format v1 pinned: Philox known answers, str stream ids, u(w), and every golden value, on both paths."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import triton
import triton.language as tl
from _contract import (
    DIST_IDS,
    FILLS,
    GOLDEN_PATH,
    assert_contract,
    assert_uniform,
    exact,
    load_golden,
    philox,
    u_of,
)
from conftest import ALL_DTYPES
from triton_init.kernels.philox import philox4x32_10, uniform01

import triton_init
from triton_init import reference
from triton_init._format import stream_id

GOLDEN = load_golden()
KAT = GOLDEN["philox4x32_10_kat"]
GOLDEN_CASES = [(dist, k, entry) for dist in DIST_IDS for k, entry in enumerate(GOLDEN[dist])]


def _hex(words):
    return [int(w, 16) for w in words]


def _dist_kwargs(entry):
    return {k: entry[k] for k in ("a", "b", "mean", "std") if k in entry}


@triton.jit
def _philox_probe_kernel(counter_ptr, key_ptr, words_ptr, u_ptr, n, BLOCK: tl.constexpr):
    offs = tl.arange(0, BLOCK)
    mask = offs < n
    c = [tl.load(counter_ptr + 4 * offs + i, mask=mask).to(tl.uint32) for i in tl.static_range(4)]
    k0 = tl.load(key_ptr).to(tl.uint32)
    k1 = tl.load(key_ptr + 1).to(tl.uint32)
    w0, w1, w2, w3 = philox4x32_10(c[0], c[1], c[2], c[3], k0, k1)
    tl.store(words_ptr + 4 * offs, w0.to(tl.int64), mask=mask)
    tl.store(words_ptr + 4 * offs + 1, w1.to(tl.int64), mask=mask)
    tl.store(words_ptr + 4 * offs + 2, w2.to(tl.int64), mask=mask)
    tl.store(words_ptr + 4 * offs + 3, w3.to(tl.int64), mask=mask)
    tl.store(u_ptr + offs, uniform01(w0), mask=mask)


def _kernel_philox(counter, key):
    counters = torch.tensor(counter, dtype=torch.int64).to(torch.int32)  # wraps: the bits are what count
    keys = torch.tensor(key, dtype=torch.int64).to(torch.int32)
    words = torch.zeros(4, dtype=torch.int64)
    u = torch.zeros(1, dtype=torch.float32)
    _philox_probe_kernel[(1,)](counters, keys, words, u, 1, BLOCK=1)
    return [v & 0xFFFFFFFF for v in words.tolist()], float(u[0])


TESTS_DIR = Path(__file__).resolve().parent
# The design notes' golden file, where they sit beside the clone; the suite never needs them.
SHARED_GOLDEN = TESTS_DIR.parent.parent / "shared" / "golden" / "stream_v1.json"


def test_golden_file_is_the_v1_format():
    assert GOLDEN["format"] == "triton_init stream format v1"
    assert "Random123" in GOLDEN["provenance"] and "float64" in GOLDEN["provenance"]
    assert triton_init.FORMAT_VERSION == 1
    assert len(KAT) == 3 and all(GOLDEN[d] for d in DIST_IDS)


@pytest.mark.skipif(not SHARED_GOLDEN.is_file(), reason="the design notes' golden file is not beside this clone")
def test_golden_copy_equals_the_shared_golden_file():
    shared = json.loads(SHARED_GOLDEN.read_text())
    assert {k: v for k, v in GOLDEN.items() if k != "provenance"} == shared


def test_golden_values_load_from_a_tree_without_the_shared_folder(tmp_path):
    """The test helpers read the repository's own copy: copied alone into an empty directory (no
    ../shared anywhere above it), they load the same values."""
    clone = tmp_path / "clone" / "tests"
    (clone / "data").mkdir(parents=True)
    for name in ("_contract.py", "conftest.py"):
        (clone / name).write_text((TESTS_DIR / name).read_text())
    (clone / "data" / GOLDEN_PATH.name).write_bytes(GOLDEN_PATH.read_bytes())
    assert not (tmp_path / "shared").exists() and not (tmp_path / "clone" / "shared").exists()
    code = "import json, _contract; print(json.dumps(_contract.load_golden()))"
    done = subprocess.run([sys.executable, "-c", code], cwd=clone, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == GOLDEN


def test_no_test_reads_the_shared_folder():
    """Only the optional comparison above builds a path into the design notes' folder."""
    into_shared = re.compile(r"""["']shared["']\s*/|shared[/]golden""")
    found = {path.name: len(into_shared.findall(path.read_text())) for path in TESTS_DIR.rglob("*.py")}
    assert {name: n for name, n in found.items() if n} == {"test_stream_format.py": 1}


@pytest.mark.parametrize("case", KAT, ids=["zeros", "ones", "pi"])
def test_philox_known_answers_reference(case):
    counter, key = _hex(case["counter"]), _hex(case["key"])
    c = [torch.tensor([v], dtype=torch.int64) for v in counter]
    words = reference.philox4x32_10(*c, *key)
    assert [int(w) for w in words] == _hex(case["words"])


@pytest.mark.parametrize("case", KAT, ids=["zeros", "ones", "pi"])
def test_philox_known_answers_kernel(case):
    counter, key = _hex(case["counter"]), _hex(case["key"])
    words, u0 = _kernel_philox(counter, key)
    assert words == _hex(case["words"])
    assert u0 == ((words[0] >> 9) + 0.5) * 2.0 ** -23


@pytest.mark.parametrize("case", KAT, ids=["zeros", "ones", "pi"])
def test_philox_known_answers_test_oracle(case):
    words = philox(*[[v] for v in _hex(case["counter"])], *_hex(case["key"]))
    assert [int(w[0]) for w in words] == _hex(case["words"])


def test_issue_known_answers_match_the_golden_file():
    """The three vectors stated in the issue itself, so that a wrong golden file cannot pass unnoticed."""
    stated = [
        ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
        ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
        ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
         [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
    ]
    assert [(_hex(c["counter"]), _hex(c["key"]), _hex(c["words"])) for c in KAT] == stated


@pytest.mark.parametrize("name", list(GOLDEN["stream_id"]))
def test_str_stream_ids(name):
    assert stream_id(name) == GOLDEN["stream_id"][name]
    assert triton_init.stream_id(name) == GOLDEN["stream_id"][name]


def test_stream_none_is_zero_and_ints_pass_through():
    assert stream_id(None) == 0
    assert stream_id(0) == 0 and stream_id(2**64 - 1) == 2**64 - 1


def test_str_stream_fills_like_its_id():
    name = "layers.0.attention.wq.weight"
    by_name, by_id = torch.empty(37), torch.empty(37)
    triton_init.normal_(by_name, seed=3, stream=name)
    triton_init.normal_(by_id, seed=3, stream=GOLDEN["stream_id"][name])
    assert torch.equal(by_name, by_id)


def test_uniform01_is_exact_and_strictly_inside_the_unit_interval():
    words = torch.tensor([0, 1, 511, 512, 0x7FFFFFFF, 0x80000000, 0xFFFFFE00, 0xFFFFFFFF], dtype=torch.int64)
    expected = [((w >> 9) + 0.5) / 2**23 for w in words.tolist()]
    for dtype in (torch.float64, torch.float32):
        u = reference.uniform01(words, dtype)
        assert u.tolist() == expected
    assert expected[0] == 2.0 ** -24 and expected[-1] == 1.0 - 2.0 ** -24


@pytest.mark.parametrize("dist,k,entry", GOLDEN_CASES, ids=[f"{d}{k}" for d, k, _ in GOLDEN_CASES])
def test_golden_words_and_oracle(dist, k, entry):
    """The tests' own oracle reproduces the golden values (so it can stand in where the file has none)."""
    stream = stream_id(entry["stream"])
    values = exact(entry["index"], dist, entry["seed"], stream, **_dist_kwargs(entry))
    if dist != "uniform":
        values = entry.get("mean", 0.0) + entry.get("std", 1.0) * values
    np.testing.assert_allclose(values, entry["values"], rtol=1e-12, atol=1e-15)
    if "words_of_index" in entry:
        idx = torch.tensor(entry["index"], dtype=torch.int64)
        words = torch.stack(reference.group_words(idx >> 2, entry["seed"], stream), dim=-1)
        lanes = torch.gather(words, 1, (idx & 3).unsqueeze(1)).squeeze(1)
        assert lanes.tolist() == _hex(entry["words_of_index"])
        u = u_of(np.array(lanes.tolist(), dtype=np.uint64))
        np.testing.assert_allclose(entry["a"] + (entry["b"] - entry["a"]) * u, entry["values"], rtol=1e-15)


def _check_golden(values: torch.Tensor, dist: str, entry) -> None:
    if dist == "uniform":
        assert_uniform(values, entry["values"])
    else:
        mean, std = entry.get("mean", 0.0), entry.get("std", 1.0)
        z = (np.array(entry["values"]) - mean) / std
        interval = (entry["a"], entry["b"]) if dist == "trunc_normal" else None
        assert_contract(values, z, mean=mean, std=std, interval=interval)
        if dist == "trunc_normal":
            assert ((values.double() >= entry["a"]) & (values.double() <= entry["b"])).all()


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("dist,k,entry", GOLDEN_CASES, ids=[f"{d}{k}" for d, k, _ in GOLDEN_CASES])
def test_golden_values_reference_values_at(dist, k, entry, dtype):
    params = reference.dist_params(DIST_IDS[dist], dtype, **_dist_kwargs(entry))
    idx = torch.tensor(entry["index"], dtype=torch.int64)
    values = reference.values_at(idx, DIST_IDS[dist], params, entry["seed"], stream_id(entry["stream"]), dtype)
    assert values.dtype == dtype
    _check_golden(values, dist, entry)


@pytest.mark.parametrize("backend", ["reference", "triton"])
@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=str)
@pytest.mark.parametrize("dist,k,entry", GOLDEN_CASES, ids=[f"{d}{k}" for d, k, _ in GOLDEN_CASES])
def test_golden_values_public_api(dist, k, entry, dtype, backend, poisoned):
    """The golden indices are a contiguous run: fill it as a block of a 1-D logical tensor."""
    first, last = min(entry["index"]), max(entry["index"])
    assert entry["index"] == list(range(first, last + 1))
    out = poisoned(last + 1 - first, dtype=dtype)
    with triton_init.backend(backend):
        FILLS[dist](out, **_dist_kwargs(entry), seed=entry["seed"], stream=entry["stream"],
                    global_shape=(last + 1 + 5,), global_offset=(first,))
    _check_golden(out, dist, entry)
