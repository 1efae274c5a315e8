"""What verify_ and `triton-init verify` read: checkpoints wrapped in the usual dicts, a pipeline stage's
prefix, meta-device models, dtypes of one size, blocks at offsets, aliases, dirac_ with groups, manifests and
writes of other format versions, and a bf16 checkpoint rounded by truncation instead of to nearest even."""

import functools
import json

import pytest
import torch

import triton_init as ti
from triton_init import Manifest, ManifestError
from triton_init.cli import main
from triton_init.models import build

SEED = 31


@pytest.fixture(scope="module")
def nano(tmp_path_factory):
    """A nano model initialized with a manifest, its state dict and the manifest's file."""
    manifest = Manifest()
    model = ti.materialize_(build("nano"), "cpu", "llama", seed=SEED, manifest=manifest)
    path = tmp_path_factory.mktemp("nano") / "m.json"
    manifest.save(path)
    return model, manifest, path


def _cli(capsys, checkpoint, manifest, *extra) -> tuple:
    code = main(["verify", str(checkpoint), "--manifest", str(manifest), "--seed", "3", "--no-progress", *extra])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("wrap", [lambda sd: {"model": sd, "step": 1200, "optimizer": {"lr": 3e-4}},
                                  lambda sd: {"state_dict": sd, "epoch": 4}],
                         ids=["model", "state_dict"])
def test_checkpoints_wrapped_in_the_usual_dicts(nano, capsys, tmp_path, wrap):
    model, _, manifest = nano
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(wrap(state), tmp_path / "c.pt")
    code, out, err = _cli(capsys, tmp_path / "c.pt", manifest)
    assert code == 0, out + err
    assert f"{len(state)} tensors: {len(state)} ok" in out
    state["norm.weight"][3] += 1.0
    torch.save(wrap(state), tmp_path / "c.pt")
    code, out, _ = _cli(capsys, tmp_path / "c.pt", manifest)
    assert code == 1 and "norm.weight" in out


def test_a_pipeline_stage_with_its_prefix(nano, capsys, tmp_path):
    """A stage's own names ("attention.wq.weight") map to the manifest's streams under ``--prefix``; without
    it nothing matches and every recorded tensor is missing."""
    model, manifest, path = nano
    stage = model.layers["1"]
    torch.save(stage.state_dict(), tmp_path / "stage.pt")
    code, out, _ = _cli(capsys, tmp_path / "stage.pt", path, "--prefix", "layers.1.")
    assert code == 0 and "9 tensors: 9 ok" in out
    code, out, _ = _cli(capsys, tmp_path / "stage.pt", path)
    assert code == 1 and "missing" in out
    report = ti.verify_(stage, manifest, prefix="layers.1.")
    assert report.ok and {t.stream for t in report.tensors} == {f"layers.1.{k}" for k in stage.state_dict()}
    other = ti.verify_(stage, manifest, prefix="layers.0.")  # stage 1's values are not stage 0's
    assert not other.ok and len(other.failures) == 7  # all but the two norms (ones)


def test_a_meta_device_model_holds_no_values(nano):
    _, manifest, _ = nano
    with torch.device("meta"):
        meta = build("nano")
    report = ti.verify_(meta, manifest)
    assert not report.ok and report.failures
    assert {t.verdict for t in report.tensors} == {"missing"}
    assert all("meta device" in t.detail for t in report.tensors)


def test_a_dtype_of_the_same_size_is_a_dtype_mismatch():
    m = Manifest()
    m.record_init("w", (8, 8), torch.bfloat16, ti.normal_, SEED)
    values = ti.normal_(torch.empty(8, 8, dtype=torch.bfloat16), seed=SEED, stream="w")
    assert ti.verify_({"w": values}, m).ok
    report = ti.verify_({"w": values.to(torch.float16)}, m)
    assert [t.verdict for t in report.tensors] == ["dtype mismatch"]
    assert "float16, the manifest records bfloat16" in report.tensors[0].detail


def test_blocks_at_their_offsets():
    """A tensor-parallel shard checked as a block of the recorded tensor: right at its offset, wrong
    elsewhere, and a shape mismatch without one."""
    m = Manifest()
    m.record_init("w", (64, 48), torch.float32, ti.normal_, SEED)
    shard = ti.normal_(torch.empty(16, 48), seed=SEED, stream="w", global_shape=(64, 48), global_offset=(32, 0))
    assert ti.verify_({"w": shard}, m, offsets={"w": (32, 0)}, samples=None).ok
    wrong = ti.verify_({"w": shard}, m, offsets={"w": (16, 0)})
    assert [t.verdict for t in wrong.tensors] == ["mismatch"]
    assert [t.verdict for t in ti.verify_({"w": shard}, m).tensors] == ["shape mismatch"]


def test_an_alias_is_checked_as_the_tensor_it_names():
    m = Manifest()
    m.record_init("emb.weight", (10, 6), torch.float32, ti.normal_, SEED)
    m.alias("head.weight", "emb.weight")
    emb = ti.normal_(torch.empty(10, 6), seed=SEED, stream="emb.weight")
    report = ti.verify_({"emb.weight": emb, "head.weight": emb.clone()}, m, samples=None)
    assert report.ok and [(t.verdict, t.checked) for t in report.tensors] == [("ok", 60), ("ok", 60)]
    head = emb.clone()
    head[4, 2] = 7.0
    bad = ti.verify_({"emb.weight": emb, "head.weight": head}, m, samples=None)
    assert [t.name for t in bad.failures] == ["head.weight"]


def test_dirac_with_groups():
    w = ti.dirac_(torch.full((6, 2, 3, 3), float("nan")), groups=3)
    m = Manifest()
    m.record("conv", (6, 2, 3, 3), torch.float32, "dirac_", {"groups": 3}, SEED)
    assert int(w.sum()) == 6
    assert ti.verify_({"conv": w}, m, samples=None).ok
    moved = w.clone()
    moved[2, 0, 1, 1], moved[2, 1, 1, 1] = 0.0, 1.0  # group 1's first one placed at its second input
    report = ti.verify_({"conv": moved}, m, samples=None)
    assert [t.verdict for t in report.tensors] == ["mismatch"] and report.tensors[0].mismatches == 2


def _manifest_text(**write_fields) -> str:
    write = {"stream": "w", "shape": [4, 4], "dtype": "float32", "fn": "normal_", "args": {"mean": 0.0, "std": 1.0},
             "seed": SEED, **write_fields}
    return json.dumps({"kind": "triton_init.manifest", "manifest_version": 1, "format_version": 1,
                       "library": "0.1.0", "aliases": {}, "writes": [write]})


@pytest.mark.parametrize("version", [2, 7])
def test_writes_of_another_stream_format_are_not_verifiable(version):
    values = ti.normal_(torch.empty(4, 4), seed=SEED, stream="w")
    this = Manifest.loads(_manifest_text(format=1))
    assert ti.verify_({"w": values}, this).ok
    other = Manifest.loads(_manifest_text(format=version))
    assert other.writes[0].format_version == version
    assert Manifest.loads(other.dumps()).writes[0].format_version == version
    report = ti.verify_({"w": values}, other)
    assert [t.verdict for t in report.tensors] == ["not verifiable"] and not report.ok
    assert f"stream format v{version}" in report.tensors[0].detail


@pytest.mark.parametrize("text, message", [
    (_manifest_text().replace('"manifest_version": 1', '"manifest_version": 0'), "manifest version 0"),
    (_manifest_text(region={"offset": 9, "shape": [2, 4], "strides": [4, 1]}), "reaches index 16"),
])
def test_manifests_this_library_cannot_read(text, message):
    with pytest.raises(ManifestError, match=message):
        Manifest.loads(text)


def test_non_finite_arguments_read_back_as_numbers():
    m = Manifest()
    w = ti.trunc_normal_(torch.empty(6, 5), a=1.5, b=float("inf"), seed=SEED, stream="w")
    m.record_init("w", (6, 5), torch.float32, functools.partial(ti.trunc_normal_, a=1.5, b=float("inf")), SEED)
    loaded = Manifest.loads(m.dumps())
    assert loaded.writes[0].args["b"] == float("inf")
    assert ti.verify_({"w": w}, loaded, samples=None).ok


def test_a_bf16_checkpoint_rounded_by_truncation_fails():
    """bf16 values cast from the fp32 ones by dropping the low 16 bits (truncation, not rounding to nearest
    even) lie up to a whole bf16 ulp from the exact value: beyond the contract's half ulp."""
    m = Manifest()
    m.record_init("w", (64, 64), torch.bfloat16, functools.partial(ti.normal_, std=0.02), SEED)
    wide = ti.normal_(torch.empty(64, 64), std=0.02, seed=SEED, stream="w")
    rounded = wide.to(torch.bfloat16)
    truncated = (wide.view(torch.int32) & ~0xFFFF).view(torch.float32).to(torch.bfloat16)
    assert ti.verify_({"w": rounded}, m, samples=None).ok
    report = ti.verify_({"w": truncated}, m, samples=None)
    assert [t.verdict for t in report.tensors] == ["mismatch"]
    assert report.tensors[0].mismatches > 64 * 64 // 8


def test_a_failure_exits_1_also_beside_unverified_tensors(capsys, tmp_path):
    m = Manifest()
    m.record_init("w", (4, 4), torch.float32, ti.normal_, SEED)
    m.record_init("own", (2,), torch.float32, lambda t, *, seed, stream: t.zero_(), SEED)
    m.save(tmp_path / "m.json")
    w = ti.normal_(torch.empty(4, 4), seed=SEED, stream="w")
    w[1, 1] = 5.0
    torch.save({"w": w, "own": torch.zeros(2)}, tmp_path / "c.pt")
    code, out, _ = _cli(capsys, tmp_path / "c.pt", tmp_path / "m.json")
    assert code == 1 and "1 mismatch" in out and "1 not verifiable" in out


def test_init_that_cannot_save_exits_2_with_one_line(capsys, tmp_path):
    """An output in a missing folder is refused before any work: one line naming it, exit status 2."""
    missing = tmp_path / "no" / "such" / "dir"
    for option in ("--save-checkpoint", "--save-manifest"):
        with pytest.raises(SystemExit) as exit_status:
            main(["init", "--model", "nano", "--device", "cpu", "--no-progress", option, str(missing / "x.pt")])
        err = capsys.readouterr().err
        assert exit_status.value.code == 2 and err.count("\n") == 1 and str(missing) in err
        assert "does not exist" in err and option in err
