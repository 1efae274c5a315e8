"""Each framework's own init against the same init under ``triton_init.intercept``, per framework and model size.

For every (framework, size) the model is built on the meta device and moved with ``to_empty`` once; each
repeat then times the framework's own init (torch's RNG) and the same call under ``intercept`` (triton_init's
values on every tensor's stream), alternating, after one warm-up of each. Reported: medians, the ratio
intercept / own (below 1: faster), elements per second. Frameworks that do not import are skipped, by name.

CPU: ``python bench/frameworks.py`` (small sizes). GPU: ``python bench/frameworks.py --device cuda``.
"""

import argparse
import dataclasses
import json
import statistics
import sys
import time
import types

import torch

from triton_init import intercept

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

    hidden, layers = size
    config = transformers.LlamaConfig(vocab_size=8 * hidden, hidden_size=hidden, intermediate_size=4 * hidden,
                                      num_hidden_layers=layers, num_attention_heads=max(1, hidden // 64),
                                      max_position_embeddings=256, tie_word_embeddings=False)
    return (lambda: transformers.LlamaForCausalLM(config)), _hf_initialize


def torchtitan_llama3(size):
    from torchtitan.models import llama3
    from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm

    dim, layers = size
    heads = max(1, dim // 64)
    base = llama3.llama3_configs["debugmodel"](attn_backend="flex")
    config = dataclasses.replace(
        base, dim=dim, vocab_size=8 * dim,
        tok_embeddings=Embedding.Config(num_embeddings=8 * dim, embedding_dim=dim,
                                        param_init=base.tok_embeddings.param_init),
        norm=RMSNorm.Config(normalized_shape=dim, param_init=base.norm.param_init),
        lm_head=Linear.Config(in_features=dim, out_features=8 * dim, param_init=llama3._output_linear_init(dim)),
        layers=llama3._build_llama3_layers(
            fuse_qkv=True, n_layers=layers, dim=dim, n_heads=heads, n_kv_heads=heads, hidden_dim=4 * dim,
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


FRAMEWORKS = {
    "transformers": transformers_llama,
    "torchtitan": torchtitan_llama3,
    "litgpt": litgpt_gpt,
    "olmo-core": olmo_core,
    "timm": timm_vit,
}
# (width, layers)
SIZES = {"cpu": {"small": (128, 2), "medium": (256, 4)}, "cuda": {"small": (512, 4), "large": (2048, 8)}}


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def measure(framework: str, size_name: str, size, device: str, repeats: int) -> dict:
    build, init = FRAMEWORKS[framework](size)
    with torch.device("meta"):
        model = build()
    model.to_empty(device=device)
    elements = sum(p.numel() for p in model.parameters())

    def own():
        init(model)

    def served():
        with intercept(model, seed=SEED):
            init(model)

    times = {"own": [], "intercept": []}
    for step in range(repeats + 1):
        for name, fn in (("own", own), ("intercept", served)):
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            if step:  # the first round warms up (imports, compiles, caches)
                times[name].append(time.perf_counter() - start)
    own_s, served_s = statistics.median(times["own"]), statistics.median(times["intercept"])
    return {"framework": framework, "size": size_name, "width_layers": list(size), "parameters": elements,
            "device": device, "repeats": repeats, "own_s": own_s, "intercept_s": served_s,
            "ratio": served_s / own_s, "own_elements_per_s": elements / own_s,
            "intercept_elements_per_s": elements / served_s}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    parser.add_argument("--sizes", help="comma-separated size names (default: all for the device type)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the records here")
    args = parser.parse_args(argv)
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
            records.append(record)
            print(f"{framework:<13} {size_name:<7} {record['parameters']:>10,} {record['own_s']:>9.4f} "
                  f"{record['intercept_s']:>12.4f} {record['ratio']:>7.2f}")
            sys.stdout.flush()
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(records, f, indent=1)
    return 0 if records else 1


if __name__ == "__main__":
    sys.exit(main())
