"""Bad files and bad input to `triton-init verify`, `verify_` and `Manifest.load`: crafted checkpoint tensors,
absurd manifests, random and empty files are one-line errors (exit 2) that never read or allocate what they
declare; a run that verified nothing does not exit 0; a --prefix keeps the missing-tensor check; wrapped
training checkpoints map to the manifest's names; output piped into a reader that stops early is quiet."""

import collections
import fractions
import io
import json
import os
import re
import resource
import struct
import subprocess
import sys

import pytest
import torch

import triton_init as ti
from triton_init import Manifest, ManifestError
from triton_init.cli import main
from triton_init.models import build

SEED = 11
NOT_A_CHECKPOINT = "is not a torch.save file, a safetensors file, or a DCP checkpoint directory"
HUGE = 1 << 40  # elements a crafted tensor declares: 4 TiB of float32, were it ever materialized


@pytest.fixture(scope="module")
def nano():
    """(state dict, manifest) of the nano llama, and the manifest saved as JSON text."""
    m = Manifest()
    model = ti.materialize_(build("nano"), "cpu", "llama", seed=SEED, manifest=m)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, m


@pytest.fixture
def files(nano, tmp_path):
    """A writer of checkpoints next to the saved manifest: files(obj) -> (checkpoint, manifest) paths."""
    manifest = tmp_path / "m.json"
    nano[1].save(manifest)

    def write(obj, name="c.pt", **save):
        path = tmp_path / name
        if isinstance(obj, bytes):
            path.write_bytes(obj)
        else:
            torch.save(obj, path, **save)
        return path, manifest

    return write


def _verify(capsys, checkpoint, manifest, *extra):
    code = main(["verify", str(checkpoint), "--manifest", str(manifest), "--seed", "3", "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _one_line_error(code, out, err, *fragments):
    assert code == 2 and out == "", (code, out, err)
    assert err.startswith("triton-init verify: error: ") and err.count("\n") == 1 and len(err) < 400, err
    for word in ("Traceback", "UnicodeDecodeError", "pickle", "Unpickl"):
        assert word not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)


class _Declared:
    """Pickles as a tensor over ``base``'s storage with any declared shape and strides (a crafted file)."""

    def __init__(self, base, shape, strides):
        self.base, self.shape, self.strides = base, shape, strides

    def __reduce_ex__(self, protocol):
        storage = torch.storage.TypedStorage(wrap_storage=self.base.untyped_storage(), dtype=self.base.dtype,
                                             _internal=True)
        return torch._utils._rebuild_tensor_v2, (storage, 0, self.shape, self.strides, False,
                                                 collections.OrderedDict())


def _max_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss << 10


CRAFTED = {  # name -> (tensor or crafted stand-in, what the error must say)
    "expand": (lambda: torch.zeros(1).expand(HUGE), "repeats elements"),
    "expand_2d": (lambda: torch.zeros(4, 1).expand(4, 1 << 20), "repeats elements"),
    "short_storage": (lambda: _Declared(torch.zeros(4), (1000,), (1,)), "reaches past its stored data"),
    "huge_shape": (lambda: _Declared(torch.zeros(4), (HUGE,), (1,)), "reaches past its stored data"),
    "sparse_coo": (lambda: torch.eye(4).to_sparse(), "sparse_coo"),
    "sparse_csr": (lambda: torch.eye(4).to_sparse_csr(), "sparse_csr"),
    "complex": (lambda: torch.zeros(4, dtype=torch.complex64), "complex64"),
    "float8_e4m3fn": (lambda: torch.zeros(4, dtype=torch.float8_e4m3fn), "float8_e4m3fn"),
    "float8_e5m2": (lambda: torch.zeros(4, dtype=torch.float8_e5m2), "float8_e5m2"),
}


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("case", sorted(CRAFTED))
def test_crafted_checkpoint_tensors_are_one_line_errors(nano, files, capsys, case, legacy):
    if legacy and case.startswith("float8"):
        pytest.skip("torch.load cannot read float8 from the legacy format")
    make, says = CRAFTED[case]
    state = dict(nano[0])
    state["tok_embeddings.weight"] = make()  # a recorded name: the bad tensor is never compared either
    checkpoint, manifest = files(state, _use_new_zipfile_serialization=not legacy)
    before = _max_rss()
    code, out, err = _verify(capsys, checkpoint, manifest, "--samples", "all")
    assert _max_rss() - before < 256 << 20  # nothing of the declared size was materialized
    _one_line_error(code, out, err, says, checkpoint.name)
    if case.startswith("short") or case.startswith("huge"):
        return  # torch.load itself refuses these
    assert "tok_embeddings.weight" in err
    with pytest.raises(ValueError, match="tok_embeddings.weight"):  # the library's verify_, on a state dict
        ti.verify_(state, nano[1], samples=None)


def test_a_crafted_unrecorded_tensor_is_refused_too(nano, files, capsys):
    checkpoint, manifest = files({**nano[0], "extra": torch.zeros(1).expand(HUGE)})
    _one_line_error(*_verify(capsys, checkpoint, manifest), "extra", "repeats elements")


def test_views_that_are_not_contiguous_but_distinct_are_read(nano, files, capsys):
    """A transposed or sliced tensor is a fine checkpoint entry: only repeated or out-of-storage elements fail."""
    state = dict(nano[0])
    name = "layers.0.attention.wq.weight"
    state[name] = state[name].t().contiguous().t()  # the same values, column-major storage
    state["norm.weight"] = torch.cat([state["norm.weight"], torch.zeros(3)])[:-3]  # a slice of a larger storage
    code, out, _ = _verify(capsys, *files(state))
    assert code == 0 and "21 tensors: 21 ok" in out


def _safetensors(tensors: dict, header_edit=None, data_cut=0) -> bytes:
    """A .safetensors file's bytes, with its JSON header edited by ``header_edit`` and data cut short."""
    header, blobs, offset = {}, [], 0
    names = {"float8_e4m3fn": "F8_E4M3", "complex64": "C64", "float32": "F32", "bfloat16": "BF16"}
    for name, t in tensors.items():
        blob = t.contiguous().view(torch.uint8).numpy().tobytes() if t.dtype != torch.complex64 else \
            t.numpy().tobytes()
        header[name] = {"dtype": names[str(t.dtype).removeprefix("torch.")], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if header_edit:
        header_edit(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    data = b"".join(blobs)
    return struct.pack("<Q", len(text)) + text + data[:len(data) - data_cut]


def test_safetensors_that_declare_more_than_they_hold(nano, files, capsys):
    pytest.importorskip("safetensors")
    state = nano[0]
    ok = _safetensors(state)
    checkpoint, manifest = files(ok, "c.safetensors")
    code, out, _ = _verify(capsys, checkpoint, manifest)
    assert code == 0 and "21 tensors: 21 ok" in out  # the hand-written file is a valid one

    def grow(header):
        header["output.weight"]["shape"] = [HUGE]
        header["output.weight"]["data_offsets"][1] = header["output.weight"]["data_offsets"][0] + 4 * HUGE

    def reshape(header):
        header["output.weight"]["shape"] = [HUGE]

    cases = {
        "data_past_the_end": (_safetensors(state, grow), "output.weight", "past the file"),
        "shape_past_its_data": (_safetensors(state, reshape), "output.weight", "needs"),
        "truncated": (_safetensors(state, data_cut=100), "past the file"),
        "header_past_the_end": (ok[:8 + 40], "header declares"),
        "float8": (_safetensors({**state, "f8": torch.zeros(4, dtype=torch.float8_e4m3fn)}), "f8",
                   "float8_e4m3fn"),
        "complex": (_safetensors({**state, "c": torch.zeros(4, dtype=torch.complex64)}), "complex64"),
    }
    for name, (blob, *says) in cases.items():
        before = _max_rss()
        checkpoint, _ = files(blob, f"{name}.safetensors")
        _one_line_error(*_verify(capsys, checkpoint, manifest), checkpoint.name, *says)
        assert _max_rss() - before < 256 << 20


@pytest.mark.parametrize("content", [b"", os.urandom(4096), b"\x80\x02 random pickle-like bytes",
                                     b"PK\x03\x04 not really a zip", b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}x"],
                         ids=["empty", "random", "pickle_opcode", "zip_magic", "safetensors_like"])
@pytest.mark.parametrize("suffix", [".pt", ".safetensors", ".bin"])
def test_random_or_empty_files_say_what_they_are_not(nano, files, capsys, content, suffix):
    checkpoint, manifest = files(content, "c" + suffix)
    code, out, err = _verify(capsys, checkpoint, manifest)
    _one_line_error(code, out, err, checkpoint.name)
    if content[:4] != b"PK\x03\x04":  # a zip archive torch cannot read is named as such
        assert NOT_A_CHECKPOINT in err or "safetensors header" in err, err
    # the same file as the manifest
    code, out, err = _verify(capsys, files(nano[0])[0], checkpoint)
    _one_line_error(code, out, err, f"{checkpoint.name} is not a triton_init manifest")
    with pytest.raises(ManifestError, match="not a triton_init manifest"):
        Manifest.load(checkpoint)


def test_a_checkpoint_given_as_the_manifest_and_the_other_way_round(nano, files, capsys):
    checkpoint, manifest = files(nano[0])
    _one_line_error(*_verify(capsys, checkpoint, checkpoint), "c.pt is not a triton_init manifest: not text")
    _one_line_error(*_verify(capsys, manifest, manifest), f"m.json {NOT_A_CHECKPOINT}")


def test_a_torch_save_file_of_other_objects_says_so(files, capsys):
    checkpoint, manifest = files({"model": {}, "hparams": fractions.Fraction(1, 3)})
    _one_line_error(*_verify(capsys, checkpoint, manifest), "fractions.Fraction", "not only tensors")


def _edited(manifest_text: str, edit) -> str:
    data = json.loads(manifest_text)
    edit(data)
    return json.dumps(data)


def _set(key, value, k=0):
    return lambda data: data["writes"][k].__setitem__(key, value)


ABSURD = {  # name -> (manifest text from the valid one, what the error must say)
    "seed_5000_digits": (lambda t: t.replace('"seed":11', '"seed":' + "9" * 5000, 1), "too large"),
    "seed_4000_digits": (lambda t: t.replace('"seed":11', '"seed":' + "9" * 4000, 1), "(4000 characters)"),
    "shape_past_2_63": (lambda t: _edited(t, _set("shape", [1 << 62, 4])), "2**63 elements"),
    "dim_past_2_64": (lambda t: _edited(t, _set("shape", [1 << 64, 0])), "2**63 elements"),
    "negative_dim": (lambda t: _edited(t, _set("shape", [-1, 4])), "non-negative"),
    "region_offset": (lambda t: _edited(t, _set("region", {"offset": 1 << 70, "shape": [1], "strides": [1]})),
                      "region.offset"),
    "argument_past_float": (lambda t: _edited(t, lambda d: d["writes"][0]["args"].__setitem__("std", 10 ** 400)),
                            "beyond the float64 range"),
    "stream_past_2_64": (lambda t: _edited(t, _set("stream", 10 ** 100)), "(101 characters)"),
    "format_version": (lambda t: _edited(t, _set("format", 10 ** 300)), "format must be"),
    "float8_dtype": (lambda t: _edited(t, _set("dtype", "float8_e4m3fn")), "float8_e4m3fn is not one"),
    "complex_dtype": (lambda t: _edited(t, _set("dtype", "complex64")), "complex64 is not one"),
    "nested_writes": (lambda t: t.replace('"writes":[', '"writes":' + "[" * 100_000 + "]" * 100_000 + ',"x":[', 1),
                      "nested too deeply"),
    "nested_alias": (lambda t: _edited(t, lambda d: d["aliases"].__setitem__("a", [[1]])), "aliases['a']"),
    "list": (lambda t: "[" * 100_000, "not a JSON object"),
    "truncated": (lambda t: t[:len(t) // 2], "not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(ABSURD))
def test_absurd_manifests_are_one_line_errors(nano, files, capsys, tmp_path, case):
    edit, says = ABSURD[case]
    checkpoint, good = files(nano[0])
    text = edit(good.read_text())
    assert text != good.read_text()
    path = tmp_path / f"{case}.json"
    path.write_text(text)
    _one_line_error(*_verify(capsys, checkpoint, path), path.name, says)
    with pytest.raises(ManifestError, match=re.escape(says)):
        Manifest.loads(text)


def test_a_run_that_verified_nothing_does_not_exit_0(nano, files, capsys, tmp_path):
    state, m = nano
    checkpoint, manifest = files(state)
    empty = tmp_path / "empty.json"
    Manifest().save(empty)
    code, out, _ = _verify(capsys, checkpoint, empty)
    assert code == 3 and "21 tensors: 21 unrecorded" in out and "nothing was verified: the manifest records no " \
                                                                 "tensor" in out
    report = ti.verify_(state, Manifest())
    assert not report.ok and report.gaps == ["nothing was verified: the manifest records no tensor"]
    # every tensor unrecorded: the manifest's tensors are all missing, a failure
    renamed, _ = files({f"other.{k}": v for k, v in state.items()}, "renamed.pt")
    code, out, _ = _verify(capsys, renamed, manifest, "--json")
    counts = json.loads(out)["counts"]
    assert code == 1 and counts == {"missing": 21, "unrecorded": 21}
    with pytest.raises(ti.VerificationError, match="nothing was verified"):
        ti.verify_({}, Manifest(), raise_on_failure=True)


def _stage(state, n: int) -> dict:
    """Pipeline stage n's state dict: layer n's tensors under their names inside the stage."""
    prefix = f"layers.{n}."
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def test_a_prefix_keeps_the_missing_tensor_check(nano, files, capsys):
    state, m = nano
    stage = _stage(state, 1)
    checkpoint, manifest = files(stage, "stage1.pt")
    code, out, _ = _verify(capsys, checkpoint, manifest, "--prefix", "layers.1.", "--json")
    report = json.loads(out)
    assert code == 0 and report["counts"] == {"ok": 9} and report["gaps"] == []
    assert {t["stream"] for t in report["tensors"]} == {f"layers.1.{k}" for k in stage}
    # a tensor of the stage absent from its checkpoint: missing, named by its stream
    del stage["attention.wk.weight"]
    checkpoint, _ = files(stage, "stage1_short.pt")
    code, out, _ = _verify(capsys, checkpoint, manifest, "--prefix", "layers.1.", "--json")
    report = json.loads(out)
    assert code == 1 and report["counts"] == {"ok": 8, "missing": 1}
    assert [t["name"] for t in report["tensors"] if t["verdict"] == "missing"] == ["layers.1.attention.wk.weight"]
    # the wrong stage's prefix: the names find layer 0's records, whose random values differ
    code, out, _ = _verify(capsys, checkpoint, manifest, "--prefix", "layers.0.", "--json")
    assert code == 1 and json.loads(out)["counts"] == {"mismatch": 6, "ok": 2, "missing": 1}


def test_a_prefix_that_matches_no_record_is_not_a_pass(nano, files, capsys):
    state, m = nano
    whole = {k: v for k, v in state.items() if k.startswith("layers.1.")}  # a stage saved with full names
    del whole["layers.1.attention.wk.weight"]
    checkpoint, manifest = files(whole, "stage1_full_names.pt")
    code, out, _ = _verify(capsys, checkpoint, manifest, "--prefix", "layers.1.", "--json")
    assert code == 1 and json.loads(out)["counts"] == {"ok": 8, "missing": 1}
    # a typo: the names still find their records, but nothing under the prefix could be missing
    code, out, _ = _verify(capsys, checkpoint, manifest, "--prefix", "layer.1.")
    assert code == 3 and "8 tensors: 8 ok" in out and "the prefix 'layer.1.' matches no recorded stream" in out
    report = ti.verify_(_stage(state, 1), m, prefix="layer.1.")
    assert not report.ok and report.gaps[0].startswith("the prefix 'layer.1.' matches no recorded stream")
    assert report.gaps[1] == "nothing was verified: no tensor here is in the manifest"


WRAPPED = {  # name -> how a training checkpoint wraps the state dict
    "plain": lambda sd: sd,
    "model": lambda sd: {"model": sd, "optimizer": {"state": {}}, "step": torch.tensor(5)},
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 3},
    "module": lambda sd: {"module": sd, "global_steps": 10},
    "model_state_dict": lambda sd: {"model_state_dict": sd, "optimizer_state_dict": {}},
    "nested": lambda sd: {"model": {"module": sd}},
    "ddp_names": lambda sd: {f"module.{k}": v for k, v in sd.items()},
    "compiled_ddp_names": lambda sd: {f"module._orig_mod.{k}": v for k, v in sd.items()},
    "fsdp1_names": lambda sd: {f"_fsdp_wrapped_module.{k}": v for k, v in sd.items()},
    "lightning": lambda sd: {"state_dict": {f"model.{k}": v for k, v in sd.items()}, "epoch": 1},
    "deepspeed_ddp": lambda sd: {"module": {f"module.model.{k}": v for k, v in sd.items()}},
}


@pytest.mark.parametrize("wrapping", sorted(WRAPPED))
def test_wrapped_checkpoints_map_to_the_manifest_names(nano, files, capsys, wrapping):
    state, _ = nano
    tampered = dict(state)
    name = "layers.1.attention.wv.weight"
    tampered[name] = state[name].clone()
    tampered[name][-1, -1] += 0.5  # the last element: a sample always holds both ends
    wrap = WRAPPED[wrapping]
    checkpoint, manifest = files(wrap(state))
    code, out, _ = _verify(capsys, checkpoint, manifest, "--json", "--samples", "16")
    report = json.loads(out)
    assert code == 0 and report["counts"] == {"ok": 21}, report["counts"]
    assert {t["stream"] for t in report["tensors"]} == set(state)
    checkpoint, _ = files(wrap(tampered), "tampered.pt")
    code, out, _ = _verify(capsys, checkpoint, manifest, "--json", "--samples", "16")
    report = json.loads(out)
    failed = [(t["stream"], t["mismatches"], t["first_mismatch"]["coords"]) for t in report["tensors"]
              if t["verdict"] != "ok"]
    assert code == 1 and failed == [(name, 1, [d - 1 for d in state[name].shape])]


def test_the_model_key_is_read_not_a_decoy_beside_it(nano, files, capsys):
    state, _ = nano
    decoy = {k: torch.zeros_like(v) for k, v in state.items()}
    checkpoint, manifest = files({"ema": decoy, "model": state})
    code, out, _ = _verify(capsys, checkpoint, manifest)
    assert code == 0 and "21 tensors: 21 ok" in out
    checkpoint, _ = files({"model": decoy, "ema": state}, "decoy.pt")
    code, out, _ = _verify(capsys, checkpoint, manifest)
    assert code == 1


def test_a_model_component_that_is_part_of_the_names_is_kept(files, capsys, tmp_path):
    """Manifest names that start with "model." (a model held as .model, as in many causal LMs) match as they
    are: no wrapper prefix is taken off when the names already find their records."""
    import torch.nn as nn

    holder = nn.Module()
    holder.model = build("nano")
    m = Manifest()
    ti.materialize_(holder, "cpu", "llama", seed=SEED, manifest=m)
    assert all(r.name.startswith("model.") for r in m)
    path = tmp_path / "holder.json"
    m.save(path)
    checkpoint, _ = files(holder.state_dict(), "holder.pt")
    code, out, _ = _verify(capsys, checkpoint, path)
    assert code == 0 and "21 tensors: 21 ok" in out
    # the inner model's names against the holder's manifest do not match: they are not guessed into place
    checkpoint, _ = files(holder.model.state_dict(), "inner.pt")
    code, out, _ = _verify(capsys, checkpoint, path, "--json")
    assert code == 1 and json.loads(out)["counts"] == {"missing": 21, "unrecorded": 21}


def test_a_prefix_with_a_wrapped_stage_checkpoint(nano, files, capsys):
    state, _ = nano
    checkpoint, manifest = files({"model": {f"module.{k}": v for k, v in _stage(state, 0).items()}})
    code, out, _ = _verify(capsys, checkpoint, manifest, "--prefix", "layers.0.")
    assert code == 0 and "9 tensors: 9 ok" in out


def test_output_into_a_closed_pipe_is_quiet(nano, files):
    checkpoint, manifest = files(nano[0])
    process = subprocess.Popen([sys.executable, "-m", "triton_init", "verify", str(checkpoint), "--manifest",
                                str(manifest), "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first line: `| head -0`
    err = process.stderr.read()
    assert process.wait() == 141 and err == b""


class _ClosedPipe(io.StringIO):
    """A stdout whose reader has gone: every write and flush raises BrokenPipeError."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("command", ["verify", "init"])
def test_every_subcommand_ends_quietly_on_a_closed_pipe(nano, files, monkeypatch, capsys, command):
    checkpoint, manifest = files(nano[0])
    argv = {"verify": ["verify", str(checkpoint), "--manifest", str(manifest), "--no-progress"],
            "init": ["init", "--model", "nano", "--device", "cpu", "--no-progress"]}[command]
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert main(argv) == 141
    assert capsys.readouterr().err == ""


def test_huge_numbers_on_the_command_line_are_short_errors(capsys):
    for value, says in (("9" * 5000, "invalid int value: '99999999999999999999'... (5000 characters)"),
                        ("9" * 200, "must be in [0, 2**63), got '99999999999999999999'... (200 characters)")):
        with pytest.raises(SystemExit) as exit_status:
            main(["verify", "c.pt", "--manifest", "m.json", "--seed", value])
        err = capsys.readouterr().err
        assert exit_status.value.code == 2 and err.count("\n") == 1 and says in err and len(err) < 200, err
