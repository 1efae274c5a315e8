"""Each framework's own init against the same init under ``triton_init.intercept``, per framework and model size.

For every (framework, size) the model is built on the meta device and moved with ``to_empty`` once; each
repeat then times the framework's own init (torch's RNG) and the same call under ``intercept`` (triton_init's
values on every tensor's stream), alternating, after one warm-up of each. Reported: medians, the ratio
intercept / own (below 1: faster), elements per second. Frameworks that do not import are skipped, by name.

CPU: ``python bench/frameworks.py`` (small sizes). GPU: ``python bench/frameworks.py --device cuda``.

``--scale``: the sizes users run, a 1.5B-parameter transformers Llama (Llama-3.2-1B's shapes, untied) and a
torchtitan llama3 flavor of about 1B, in fp32 and bf16 (``--dtypes``): the framework's own init, the same under
``intercept``, the plain triton_init fills of the same tensors (each whole-tensor write of the intercept's
log as a direct call, the floor intercept can reach), and ``apply_plan`` of the init recorded on the meta
device (``record_plan``, the sharded path); ratios own / intercept and intercept / fills.
"""

import argparse
import dataclasses
import json
import statistics
import sys
import time
import types

import torch

from triton_init import apply_plan, intercept, record_plan
from triton_init.manifest import init_functions
from triton_init.streams import named_tensors, stream_name

SEED = 1234


def _no_grad(fn):
    def run(model):
        with torch.no_grad():
            fn(model)
    return run


def _hf_initialize(model):
    """transformers' init of every module: it skips what it marked initialized, so clear the marks first."""
    for t in list(model.modules()) + list(model.parameters()) + list(model.buffers()):
        t.__dict__.pop("_is_hf_initialized", None)
    with torch.no_grad():
        model.initialize_weights()


def transformers_llama(size):
    import transformers

    hidden, layers, vocab, ffn = _shape(size)
    heads = max(1, hidden // 64)
    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=ffn,
                                      num_hidden_layers=layers, num_attention_heads=heads,
                                      num_key_value_heads=max(1, heads // 4) if len(size) > 2 else heads,
                                      max_position_embeddings=256, tie_word_embeddings=False)
    return (lambda: transformers.LlamaForCausalLM(config)), _hf_initialize


def torchtitan_llama3(size):
    from torchtitan.models import llama3
    from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm

    dim, layers, vocab, ffn = _shape(size)
    heads = max(1, dim // 64)
    base = llama3.llama3_configs["debugmodel"](attn_backend="flex")
    config = dataclasses.replace(
        base, dim=dim, vocab_size=vocab,
        tok_embeddings=Embedding.Config(num_embeddings=vocab, embedding_dim=dim,
                                        param_init=base.tok_embeddings.param_init),
        norm=RMSNorm.Config(normalized_shape=dim, param_init=base.norm.param_init),
        lm_head=Linear.Config(in_features=dim, out_features=vocab, param_init=llama3._output_linear_init(dim)),
        layers=llama3._build_llama3_layers(
            fuse_qkv=True, n_layers=layers, dim=dim, n_heads=heads,
            n_kv_heads=max(1, heads // 4) if len(size) > 2 else heads, hidden_dim=ffn,
            rope=ComplexRoPE.Config(dim=dim // heads, max_seq_len=256, theta=500000, scaling="llama"),
            attn_backend="flex"))
    return config.build, _no_grad(lambda m: m.init_weights(buffer_device=None))


def litgpt_gpt(size):
    import litgpt
    from litgpt import pretrain

    n_embd, n_layer = size
    config = litgpt.Config(block_size=256, vocab_size=8 * n_embd, padded_vocab_size=8 * n_embd, n_layer=n_layer,
                           n_embd=n_embd, n_head=max(1, n_embd // 64), rotary_percentage=1.0, bias=False,
                           norm_class_name="RMSNorm", mlp_class_name="LLaMAMLP", intermediate_size=4 * n_embd)
    fabric = types.SimpleNamespace(strategy=None)
    return (lambda: litgpt.GPT(config)), lambda m: pretrain.initialize_weights(fabric, m, n_layer, n_embd)


def olmo_core(size):
    from olmo_core.nn.transformer import TransformerConfig

    d_model, layers = size
    config = TransformerConfig.llama_like(d_model=d_model, vocab_size=8 * d_model, n_layers=layers,
                                          n_heads=max(1, d_model // 64), hidden_size_multiple_of=64)
    return (lambda: config.build(init_device="meta")), lambda m: m.init_weights(device=torch.device("cpu"))


def timm_vit(size):
    import timm

    dim, depth = size
    return (lambda: timm.create_model("vit_base_patch16_224", pretrained=False, img_size=64, patch_size=8,
                                      embed_dim=dim, depth=depth, num_heads=max(1, dim // 64), num_classes=100)), \
        lambda m: m.init_weights()


def _shape(size) -> tuple:
    """(width, layers, vocab, ffn width) of a size: (width, layers) means vocab 8x and ffn 4x the width."""
    return tuple(size) if len(size) > 2 else (size[0], size[1], 8 * size[0], 4 * size[0])


FRAMEWORKS = {
    "transformers": transformers_llama,
    "torchtitan": torchtitan_llama3,
    "litgpt": litgpt_gpt,
    "olmo-core": olmo_core,
    "timm": timm_vit,
}
# (width, layers) or (width, layers, vocab, ffn width)
SIZES = {"cpu": {"small": (128, 2), "medium": (256, 4)}, "cuda": {"small": (512, 4), "large": (2048, 8)}}
# --scale: the sizes users run (Llama-3.2-1B's shapes; untied in transformers, 1.50B parameters; torchtitan's
# narrower ffn gives 1.10B)
SCALE = {"transformers": ("1.5B", (2048, 16, 128256, 8192)), "torchtitan": ("1B", (2048, 16, 128256, 4096))}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _plain_fills(model, log):
    """The whole-tensor writes of an intercept's ``log`` as direct triton_init calls on ``model``'s tensors."""
    tensors = {stream_name(fqn): tensor for fqn, _, _, tensor, _ in named_tensors(model)}
    functions = init_functions()
    calls = [(functions[r.function], tensors[r.stream], r.args,
              {} if r.function in ("constant_", "ones_", "zeros_") else {"seed": r.seed, "stream": r.stream})
             for r in log if r.region is None]

    def fills():
        with torch.no_grad():
            for function, tensor, args, keys in calls:
                function(tensor, **args, **keys)
    return fills


def measure(framework: str, size_name: str, size, device: str, repeats: int, dtype=None) -> dict:
    build, init = FRAMEWORKS[framework](size)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype or previous)
    try:
        with torch.device("meta"):
            model = build()
    finally:
        torch.set_default_dtype(previous)
    model.to_empty(device=device)
    elements = sum(p.numel() for p in model.parameters())
    log = []

    def own():
        init(model)

    def served():
        with intercept(model, seed=SEED) as ctx:
            init(model)
        log[:] = ctx.log

    paths = [("own", own), ("intercept", served)]
    if dtype is not None:  # --scale: the plain fills of the tensors intercept wrote, and the plan's writes
        served()
        paths.append(("fills", _plain_fills(model, log)))
        torch.set_default_dtype(dtype)
        try:
            with torch.device("meta"):
                plan = record_plan(build(), init, seed=SEED)
        finally:
            torch.set_default_dtype(previous)
        paths.append(("plan", lambda: apply_plan(model, plan)))
    times = {name: [] for name, _ in paths}
    for step in range(repeats + 1):
        for name, fn in paths:
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if step:  # the first round warms up (imports, compiles, caches)
                times[name].append(time.perf_counter() - start)
    own_s, served_s = statistics.median(times["own"]), statistics.median(times["intercept"])
    record = {"framework": framework, "size": size_name, "width_layers": list(size), "parameters": elements,
              "device": device, "repeats": repeats, "own_s": own_s, "intercept_s": served_s,
              "ratio": served_s / own_s, "own_elements_per_s": elements / own_s,
              "intercept_elements_per_s": elements / served_s}
    if dtype is not None:
        fills_s = statistics.median(times["fills"])
        record.update(dtype=str(dtype).removeprefix("torch."), fills_s=fills_s, speedup=own_s / served_s,
                      over_fills=served_s / fills_s, plan_s=statistics.median(times["plan"]))
    return record


def _keep(records: list, record: dict, path, line: str) -> None:
    """Add ``record``, print its ``line`` at once, and rewrite the JSON at ``path`` (if any) with all so far."""
    records.append(record)
    print(line, flush=True)
    if path:
        with open(path, "w") as f:
            json.dump(records, f, indent=1)


def scale(args) -> int:
    """``--scale``: own init, intercept and plain fills at the sizes users run, per dtype."""
    records = []
    print(f"{'framework':<13} {'size':<5} {'dtype':<9} {'params':>14} {'own s':>8} {'intercept s':>12} "
          f"{'fills s':>8} {'plan s':>7} {'own/intercept':>14} {'intercept/fills':>16}")
    for framework in args.frameworks.split(","):
        if framework not in SCALE:
            continue
        size_name, size = SCALE[framework]
        for dtype_name in args.dtypes.split(","):
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
            try:
                r = measure(framework, size_name, size, args.device, args.repeats, dtype)
            except ImportError as err:
                print(f"{framework:<13} skipped: {err}")
                break
            _keep(records, r, args.json,
                  f"{framework:<13} {size_name:<5} {dtype_name:<9} {r['parameters']:>14,} {r['own_s']:>8.3f} "
                  f"{r['intercept_s']:>12.3f} {r['fills_s']:>8.3f} {r['plan_s']:>7.3f} {r['speedup']:>13.2f}x "
                  f"{r['over_fills']:>15.2f}x")
    return 0 if records else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--sizes", help="comma-separated size names (default: all for the device type)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the records here")
    parser.add_argument("--scale", action="store_true",
                        help="the sizes users run (transformers 1.5B Llama, torchtitan llama3 ~1B), with plain fills")
    parser.add_argument("--dtypes", default="fp32,bf16", help="--scale: fp32 and/or bf16 (default: both)")
    args = parser.parse_args(argv)
    if args.scale:
        return scale(args)
    sizes = SIZES["cuda" if args.device.startswith("cuda") else "cpu"]
    chosen = args.sizes.split(",") if args.sizes else list(sizes)
    records = []
    print(f"{'framework':<13} {'size':<7} {'params':>10} {'own s':>9} {'intercept s':>12} {'ratio':>7}")
    for framework in args.frameworks.split(","):
        for size_name in chosen:
            try:
                record = measure(framework, size_name, sizes[size_name], args.device, args.repeats)
            except ImportError as err:
                print(f"{framework:<13} skipped: {err}")
                break
            _keep(records, record, args.json,
                  f"{framework:<13} {size_name:<7} {record['parameters']:>10,} {record['own_s']:>9.4f} "
                  f"{record['intercept_s']:>12.4f} {record['ratio']:>7.2f}")
    return 0 if records else 1


if __name__ == "__main__":
    sys.exit(main())
