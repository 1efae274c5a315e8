"""`triton-init init --save-manifest/--save-checkpoint` then `triton-init verify`: the round trip, every tamper
reported with the right tensor and kind of failure, unreadable inputs as one-line errors with exit status 2."""

import json
import math

import pytest
import torch

from triton_init.cli import main


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A nano model's manifest and checkpoint, saved by `triton-init init`."""
    root = tmp_path_factory.mktemp("roundtrip")
    manifest, checkpoint = root / "m.json", root / "c.pt"
    assert main(["init", "--model", "nano", "--device", "cpu", "--dtype", "bf16", "--no-progress",
                 "--save-manifest", str(manifest), "--save-checkpoint", str(checkpoint)]) == 0
    return manifest, checkpoint


def _verify(capsys, checkpoint, manifest, *extra):
    code = main(["verify", str(checkpoint), "--manifest", str(manifest), "--seed", "5", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def _rows(out: str) -> dict:
    """tensor name -> verdict text, from the printed table."""
    rows = {}
    for line in out.splitlines()[1:]:
        if line.startswith("max error:"):
            break
        name, _, _, verdict = line.split(maxsplit=3)
        rows[name] = verdict
    return rows


def _tampered(tmp_path, checkpoint, change):
    state = torch.load(checkpoint, weights_only=True)
    change(state)
    path = tmp_path / "tampered.pt"
    torch.save(state, path)
    return path


def test_round_trip_passes_and_prints_every_tensor(saved, capsys):
    manifest, checkpoint = saved
    code, out, _ = _verify(capsys, checkpoint, manifest)
    rows = _rows(out)
    assert code == 0 and len(rows) == 21 and set(rows.values()) == {"ok"}
    assert "21 tensors: 21 ok (sample seed 5)" in out
    code, out, _ = _verify(capsys, checkpoint, manifest, "--json", "--samples", "all")
    report = json.loads(out)
    assert code == 0 and report["ok"] and report["counts"] == {"ok": 21}
    assert sum(t["checked"] for t in report["tensors"]) == 2 * (256 * 32) + 2 * (32 * 32 * 2 + 16 * 32 * 2
                                                                                 + 96 * 32 * 3 + 64) + 32


@pytest.mark.parametrize("tamper, name, verdict", [
    ("flip", "layers.1.ffn_norm.weight", "mismatch: 1 of 32"),
    ("flip_last", "output.weight", "mismatch: 1 of"),
    ("dtype", "layers.0.attention.wk.weight", "dtype mismatch: float32, the manifest records bfloat16"),
    ("drop", "tok_embeddings.weight", "missing"),
    ("shape", "layers.0.feed_forward.w1.weight", "shape mismatch"),
])
def test_each_tamper_names_its_tensor(saved, capsys, tmp_path, tamper, name, verdict):
    manifest, checkpoint = saved

    def change(state):
        if tamper == "flip":
            state[name][3] = 0.5
        elif tamper == "flip_last":
            state[name][-1, -1] = -state[name][-1, -1] + 1
        elif tamper == "dtype":
            state[name] = state[name].float()
        elif tamper == "drop":
            del state[name]
        else:
            state[name] = state[name][:-1]

    code, out, _ = _verify(capsys, _tampered(tmp_path, checkpoint, change), manifest)
    rows = _rows(out)
    assert code == 1 and rows.pop(name).startswith(verdict)
    assert set(rows.values()) == {"ok"}
    if tamper == "flip":  # NaN too is a mismatch, and the JSON report stays strict JSON
        code, out, _ = _verify(capsys, _tampered(tmp_path, checkpoint, lambda s: s[name].fill_(math.nan)),
                               manifest, "--json")
        failed = [t for t in json.loads(out, parse_constant=pytest.fail)["tensors"] if t["verdict"] != "ok"]
        assert code == 1 and [(t["name"], t["mismatches"], t["max_error"]) for t in failed] == [(name, 32, "inf")]
        assert failed[0]["first_mismatch"]["got"] == "nan"


def test_swapped_tensors_are_both_named_with_what_they_hold(saved, capsys, tmp_path):
    manifest, checkpoint = saved
    a, b = "layers.0.attention.wq.weight", "layers.0.attention.wo.weight"

    def swap(state):
        state[a], state[b] = state[b], state[a]

    code, out, _ = _verify(capsys, _tampered(tmp_path, checkpoint, swap), manifest)
    rows = _rows(out)
    assert code == 1
    assert rows[a].startswith("mismatch") and f"values of {b}" in rows[a]
    assert rows[b].startswith("mismatch") and f"values of {a}" in rows[b]
    assert sum(v == "ok" for v in rows.values()) == 19


def test_another_seed_fails_every_random_tensor(saved, capsys, tmp_path):
    manifest, _ = saved
    other = tmp_path / "seed1.pt"
    assert main(["init", "--model", "nano", "--device", "cpu", "--seed", "1", "--no-progress",
                 "--save-checkpoint", str(other)]) == 0
    capsys.readouterr()
    code, out, _ = _verify(capsys, other, manifest)
    rows = _rows(out)
    assert code == 1 and "another seed" in out
    assert {n for n, v in rows.items() if v == "ok"} == {n for n in rows if "norm" in n}
    # the seed changed in the manifest, for one tensor: only that one fails
    data = json.loads(manifest.read_text())
    data["writes"][3]["seed"] += 1
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    code, out, _ = _verify(capsys, saved[1], edited)
    failed = {n for n, v in _rows(out).items() if v != "ok"}
    assert code == 1 and failed == {data["writes"][3]["stream"]}


def test_unreadable_inputs_are_one_line_errors(saved, capsys, tmp_path):
    manifest, checkpoint = saved
    text, blob = manifest.read_text(), checkpoint.read_bytes()
    cases = {
        "truncated.json": text[: len(text) // 2],
        "garbage.json": "\x00\x01 not json",
        "foreign.json": json.dumps({"writes": []}),
        "truncated.pt": blob[: len(blob) // 2],
        "garbage.pt": b"\x80\x04 not a checkpoint",
    }
    for name, content in cases.items():
        path = tmp_path / name
        (path.write_text if isinstance(content, str) else path.write_bytes)(content)
    torch.save([1, 2, 3], tmp_path / "list.pt")
    runs = [(tmp_path / f, checkpoint) for f in ("truncated.json", "garbage.json", "foreign.json", "absent.json")]
    runs += [(manifest, tmp_path / f) for f in ("truncated.pt", "garbage.pt", "list.pt", "absent.pt")]
    for m, c in runs:
        code, out, err = _verify(capsys, c, m)
        assert code == 2 and out == "", (m, c)
        assert err.startswith("triton-init verify: error: ") and err.count("\n") == 1, err
        assert "Traceback" not in err and (m.name in err or c.name in err), err


def test_safetensors_file_and_directory(saved, capsys, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    manifest, checkpoint = saved
    state = torch.load(checkpoint, weights_only=True)
    safetensors.save_file(state, tmp_path / "model.safetensors")
    code, out, _ = _verify(capsys, tmp_path / "model.safetensors", manifest)
    assert code == 0 and set(_rows(out).values()) == {"ok"}
    shards = tmp_path / "shards"
    shards.mkdir()
    names = sorted(state)
    state["norm.weight"] = state["norm.weight"] * 2
    for k, part in enumerate((names[::2], names[1::2])):
        safetensors.save_file({n: state[n] for n in part}, shards / f"model-{k:05d}-of-00002.safetensors")
    code, out, _ = _verify(capsys, shards, manifest)
    rows = _rows(out)
    assert code == 1 and len(rows) == 21 and [n for n, v in rows.items() if v != "ok"] == ["norm.weight"]
    (shards / "model-00000-of-00002.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{bad}")
    code, out, err = _verify(capsys, shards, manifest)
    assert code == 2 and err.count("\n") == 1 and "model-00000-of-00002.safetensors" in err


def test_not_verifiable_tensors_exit_3(tmp_path, capsys):
    import triton_init as ti

    m = ti.Manifest()
    w = ti.normal_(torch.empty(4, 4), seed=1, stream="w")
    m.record_init("w", (4, 4), torch.float32, ti.normal_, 1)
    m.record_init("own", (2,), torch.float32, lambda t, *, seed, stream: t.zero_(), 1)
    m.save(tmp_path / "m.json")
    torch.save({"w": w, "own": torch.zeros(2)}, tmp_path / "c.pt")
    code, out, _ = _verify(capsys, tmp_path / "c.pt", tmp_path / "m.json")
    rows = _rows(out)
    assert code == 3 and rows["w"] == "ok" and rows["own"].startswith("not verifiable: written by")


def test_init_refuses_a_sharded_checkpoint(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_status:
        main(["init", "--model", "nano", "--device", "cpu", "--world-size", "2", "--no-progress",
              "--save-checkpoint", str(tmp_path / "c.pt")])
    err = capsys.readouterr().err
    assert exit_status.value.code == 2 and "--world-size 1" in err and err.count("\n") == 1
    assert not (tmp_path / "c.pt").exists()
    assert main(["init", "--model", "nano", "--device", "cpu", "--world-size", "2", "--rank", "1", "--no-progress",
                 "--save-manifest", str(tmp_path / "m.json")]) == 0
    whole = tmp_path / "whole.json"
    assert main(["init", "--model", "nano", "--device", "cpu", "--no-progress", "--save-manifest", str(whole)]) == 0
    assert (tmp_path / "m.json").read_text() == whole.read_text()
