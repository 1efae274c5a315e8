"""The model zoo: intercept on tiny configurations of the models people train, built from configs only (no
downloads), one table row per model, each checked by ``framework_checks.check_zoo_model`` (own streams,
reproducible, seed-dependent, stds within 5% of the framework's own init, structural constants and padding
rows kept, strict, the manifest from the log verifies, ties under their first name).

transformers (meta -> ``to_empty`` -> ``tie_weights`` -> ``initialize_weights``), every torchtitan 0.3.0 model's
debug flavor (scaled down: two layers, four experts), litgpt (pretraining's ``initialize_weights``, tied as its
``--train.tie_embeddings`` does), OLMo-core (its own ``init_weights``, nGPT among them) and timm (initialized in
its constructors: built inside ``intercept(None)`` and attached).
"""

import dataclasses
import importlib
import importlib.util
import inspect
import types

import pytest
import torch
from framework_checks import check_zoo_model, require, zoo_run

from triton_init._intercept import intercept

transformers = require("transformers", "transformers 5.24")
if importlib.util.find_spec("litgpt"):
    import litgpt  # noqa: F401  (its lightning import, too, before the stand-in for torchvision)

import torchvision_stub  # noqa: E402  (after transformers, which probes for torchvision at import)

torchvision_stub.install()

V, D, L, H = 256, 64, 2, 4  # vocab, width, layers, heads: tensors of 16k elements for the std check
T = transformers
DECODER = dict(vocab_size=V, hidden_size=D, intermediate_size=2 * D, num_hidden_layers=L, num_attention_heads=H,
               num_key_value_heads=2, max_position_embeddings=64)


def hf(model_class, config_class, tied=(), **config):
    def build():
        return getattr(T, model_class)(getattr(T, config_class)(**config))
    return build, tied


def hf_init(model):
    model.tie_weights()  # to_empty unties on one device (FSDP2 keeps the tie): re-tie before the init
    model.initialize_weights()


HF = {
    "gpt2": hf("GPT2LMHeadModel", "GPT2Config", (("transformer.wte.weight", "lm_head.weight"),), vocab_size=V,
               n_embd=D, n_layer=L, n_head=H, n_positions=64, bos_token_id=0, eos_token_id=0),
    "qwen2-tied": hf("Qwen2ForCausalLM", "Qwen2Config", (("model.embed_tokens.weight", "lm_head.weight"),),
                     tie_word_embeddings=True, **DECODER),
    "llama-padded": hf("LlamaForCausalLM", "LlamaConfig", pad_token_id=3, **DECODER),
    "mistral": hf("MistralForCausalLM", "MistralConfig", **DECODER),
    "qwen3": hf("Qwen3ForCausalLM", "Qwen3Config", head_dim=16, **DECODER),
    "gemma": hf("GemmaForCausalLM", "GemmaConfig", (("model.embed_tokens.weight", "lm_head.weight"),), head_dim=16,
                **DECODER),
    "phi3": hf("Phi3ForCausalLM", "Phi3Config", pad_token_id=0, **DECODER),
    "opt-padded": hf("OPTForCausalLM", "OPTConfig", (("model.decoder.embed_tokens.weight", "lm_head.weight"),),
                     vocab_size=V, hidden_size=D, ffn_dim=2 * D, num_hidden_layers=L, num_attention_heads=H,
                     word_embed_proj_dim=D, max_position_embeddings=64, pad_token_id=1),
    "gpt-neox": hf("GPTNeoXForCausalLM", "GPTNeoXConfig", vocab_size=V, hidden_size=D, intermediate_size=2 * D,
                   num_hidden_layers=L, num_attention_heads=H, max_position_embeddings=64),
    "t5": hf("T5ForConditionalGeneration", "T5Config", (("shared.weight", "encoder.embed_tokens.weight"),),
             vocab_size=V, d_model=D, d_kv=16, d_ff=2 * D, num_layers=L, num_heads=H, decoder_start_token_id=0),
    "bart": hf("BartForConditionalGeneration", "BartConfig", (("model.shared.weight", "lm_head.weight"),),
               vocab_size=V, d_model=D, encoder_layers=1, decoder_layers=1, encoder_attention_heads=H,
               decoder_attention_heads=H, encoder_ffn_dim=2 * D, decoder_ffn_dim=2 * D, max_position_embeddings=64),
    "whisper": hf("WhisperForConditionalGeneration", "WhisperConfig", vocab_size=V, d_model=D, encoder_layers=1,
                  decoder_layers=1, encoder_attention_heads=H, decoder_attention_heads=H, encoder_ffn_dim=2 * D,
                  decoder_ffn_dim=2 * D, num_mel_bins=8, max_source_positions=16, max_target_positions=16,
                  pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=0),
    "bert": hf("BertForMaskedLM", "BertConfig", (("bert.embeddings.word_embeddings.weight",
                                                  "cls.predictions.decoder.weight"),),
               vocab_size=V, hidden_size=D, num_hidden_layers=L, num_attention_heads=H, intermediate_size=2 * D,
               max_position_embeddings=64),
    "roberta": hf("RobertaModel", "RobertaConfig", vocab_size=V, hidden_size=D, num_hidden_layers=L,
                  num_attention_heads=H, intermediate_size=2 * D, max_position_embeddings=64, pad_token_id=1),
    "mixtral-moe": hf("MixtralForCausalLM", "MixtralConfig", num_local_experts=4, num_experts_per_tok=2, **DECODER),
    "qwen3-moe": hf("Qwen3MoeForCausalLM", "Qwen3MoeConfig", num_experts=4, num_experts_per_tok=2,
                    moe_intermediate_size=D, head_dim=16, **DECODER),
    "mamba": hf("MambaForCausalLM", "MambaConfig", (("backbone.embeddings.weight", "lm_head.weight"),),
                vocab_size=V, hidden_size=D, num_hidden_layers=L, state_size=8, expand=2),
    "qwen3-next": hf("Qwen3NextForCausalLM", "Qwen3NextConfig", num_experts=4, num_experts_per_tok=2,
                     moe_intermediate_size=D, shared_expert_intermediate_size=D, head_dim=16,
                     linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16,
                     linear_value_head_dim=16, layer_types=["linear_attention", "full_attention"], **DECODER),
    "jamba": hf("JambaForCausalLM", "JambaConfig", num_experts=4, num_experts_per_tok=2, mamba_d_state=8,
                attn_layer_period=2, attn_layer_offset=1, expert_layer_period=2, expert_layer_offset=1,
                use_mamba_kernels=False, **DECODER),
    "vit": hf("ViTModel", "ViTConfig", hidden_size=D, num_hidden_layers=L, num_attention_heads=H,
              intermediate_size=4 * D, image_size=32, patch_size=4),
    "beit": hf("BeitModel", "BeitConfig", hidden_size=D, num_hidden_layers=L, num_attention_heads=H,
               intermediate_size=4 * D, image_size=32, patch_size=4, use_mask_token=True),
    "clip": hf("CLIPModel", "CLIPConfig", text_config=dict(vocab_size=V, hidden_size=D, intermediate_size=2 * D,
                                                            num_hidden_layers=L, num_attention_heads=H,
                                                            max_position_embeddings=32),
               vision_config=dict(hidden_size=D, intermediate_size=4 * D, num_hidden_layers=L, num_attention_heads=H,
                                  image_size=32, patch_size=4), projection_dim=D),
}


# ---- torchtitan 0.3.0: every model's debug flavor, two layers, at most four experts -------------------------------

TORCHTITAN = {"llama3": "llama3_configs", "qwen3": "qwen3_configs", "qwen3_5": "qwen3_5_configs",
              "deepseek_v3": "deepseekv3_configs", "gpt_oss": "gptoss_configs", "kimi_k2_7": "kimi_k2_5_configs",
              "flux": "flux_configs", "muse_glimmer": "muse_glimmer_configs"}
TORCHTITAN_FLAVORS = [("llama3", "debugmodel"), ("qwen3", "debugmodel"), ("qwen3", "debugmodel_non_fused_qkv"),
                      ("qwen3", "debugmodel_moe"), ("qwen3_5", "debugmodel"), ("qwen3_5", "debugmodel_moe"),
                      ("deepseek_v3", "debugmodel"), ("gpt_oss", "debugmodel"), ("kimi_k2_7", "debugmodel"),
                      ("flux", "flux-debug"), ("muse_glimmer", "debugmodel"), ("muse_glimmer", "debugmodel_mm")]
TORCHTITAN_TIED = {("qwen3", "debugmodel"): (("tok_embeddings.weight", "lm_head.weight"),),
                   ("qwen3", "debugmodel_non_fused_qkv"): (("tok_embeddings.weight", "lm_head.weight"),)}


def _smaller(config, depth=0):
    """A debug flavor's config with two layers, at most four experts (two per token), 64-wide experts and a
    rotary cache of 64 positions."""
    if not dataclasses.is_dataclass(config) or depth > 8:
        return config
    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "num_experts" and isinstance(value, int):
            changes[f.name] = min(value, 4)
        elif f.name in ("top_k", "router_top_k") and isinstance(value, int):
            changes[f.name] = min(value, 2)
        elif f.name == "hidden_dim" and isinstance(value, int):
            changes[f.name] = min(value, 64)
        elif f.name == "max_seq_len" and isinstance(value, int):
            changes[f.name] = min(value, 64)
        elif f.name in ("layers", "mtp_layers") and isinstance(value, (list, tuple)):
            changes[f.name] = type(value)(_smaller(x, depth + 1) for x in value[:2 if f.name == "layers" else 1])
        elif dataclasses.is_dataclass(value):
            changes[f.name] = _smaller(value, depth + 1)
    return dataclasses.replace(config, **changes)


def torchtitan(model, flavor):
    require("torchtitan", "torchtitan 0.3.0")
    try:
        module = importlib.import_module(f"torchtitan.models.{model}")
    except ImportError as err:  # qwen3_5 needs flash-linear-attention, flux the datasets package
        pytest.skip(f"torchtitan.models.{model} does not import here: {err}")
    make = getattr(module, TORCHTITAN[model])[flavor]
    accepted = inspect.signature(make).parameters
    config = _smaller(make(**{k: v for k, v in (("attn_backend", "flex"), ("moe_comm_backend", "standard"))
                              if k in accepted}))
    return config.build, lambda m: m.init_weights(buffer_device=None)


# ---- litgpt, OLMo-core, timm ------------------------------------------------------------------------------------

def litgpt(name, tie=False, **extra):
    lit = require("litgpt", "litgpt 0.5.13")
    from litgpt import pretrain

    config = lit.Config(name=name, block_size=64, vocab_size=V, padded_vocab_size=V, n_layer=L, n_embd=D, n_head=H,
                        rotary_percentage=1.0, intermediate_size=2 * D, **extra)

    def init(model):
        pretrain.initialize_weights(types.SimpleNamespace(strategy=None), model, L, D)
        if tie:  # pretrain's --train.tie_embeddings, inside the context
            model.transformer.wte.weight = model.lm_head.weight

    return (lambda: lit.GPT(config)), init, ((("lm_head.weight", "transformer.wte.weight"),) if tie else ())


LITGPT = {
    "gpt-neox": dict(parallel_residual=True, bias=True, norm_class_name="LayerNorm", mlp_class_name="GptNeoxMLP"),
    "llama-tied": dict(tie=True, n_query_groups=2, parallel_residual=False, bias=False, norm_class_name="RMSNorm",
                       mlp_class_name="LLaMAMLP"),
    "gemma-like": dict(n_query_groups=1, parallel_residual=False, bias=False, norm_class_name="RMSNorm",
                       mlp_class_name="GemmaMLP", scale_embeddings=True),
}


def olmo_core(kind, **options):
    require("olmo_core", "ai2-olmo-core 3.0.0")
    from olmo_core.nn.transformer import TransformerConfig
    from test_olmo_core import poisoning

    def build():
        make = getattr(TransformerConfig, kind)
        config = make(d_model=D, vocab_size=V, n_layers=L, n_heads=H, hidden_size_multiple_of=32, **options)
        return poisoning(config.build(init_device="meta"))

    return build, lambda model: model.init_weights(device=torch.device("cpu"), max_seq_len=64)


OLMO_CORE = {
    "llama": ("llama_like", {}),
    "ngpt": ("ngpt_like", {}),
    "moe": ("llama_like_moe", dict(num_experts=4, top_k=2, expert_hidden_size=D)),
}

TIMM = {
    "vit": dict(model_name="vit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=D, num_heads=2),
    "convnext_atto": dict(model_name="convnext_atto", depths=(1, 1, 1, 1), dims=(16, 32, 64, 160)),
    "beit": dict(model_name="beit_base_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=D, num_heads=2),
    "eva02": dict(model_name="eva02_tiny_patch14_224", img_size=28, patch_size=14, depth=2, embed_dim=D,
                  num_heads=2),
    "resnet": dict(model_name="test_resnet"),
    "efficientnet": dict(model_name="test_efficientnet"),
    "nfnet": dict(model_name="test_nfnet"),
    "deit": dict(model_name="deit_tiny_patch16_224", img_size=32, patch_size=8, depth=2, embed_dim=D, num_heads=2),
}


def timm(options):
    lib = require("timm", "timm 1.0.31")
    return lambda: lib.create_model(pretrained=False, num_classes=10, **options)


# ---- the matrix ---------------------------------------------------------------------------------------------------

def cases():
    out = [pytest.param("transformers", name, id=f"transformers-{name}") for name in HF]
    out += [pytest.param("torchtitan", f"{m}:{f}", id=f"torchtitan-{m}-{f}") for m, f in TORCHTITAN_FLAVORS]
    out += [pytest.param("litgpt", name, id=f"litgpt-{name}") for name in LITGPT]
    out += [pytest.param("olmo_core", name, id=f"olmo_core-{name}") for name in OLMO_CORE]
    out += [pytest.param("timm", name, id=f"timm-{name}") for name in TIMM]
    return out


@pytest.mark.parametrize("framework,name", cases())
def test_model_zoo(framework, name):
    if framework == "transformers":
        (build, tied), init = HF[name], hf_init
    elif framework == "torchtitan":
        model, flavor = name.split(":")
        (build, init), tied = torchtitan(model, flavor), TORCHTITAN_TIED.get((model, flavor), ())
    elif framework == "litgpt":
        build, init, tied = litgpt(name, **LITGPT[name])
    elif framework == "olmo_core":
        (build, init), tied = olmo_core(OLMO_CORE[name][0], **OLMO_CORE[name][1]), ()
    else:
        build, init, tied = timm(TIMM[name]), None, ()
    assert check_zoo_model(build, init, tied=tied) >= 1  # at least one tensor large enough for the std check


def test_torchtitan_tied_qwen3_gets_the_same_values_built_on_meta_or_on_the_cpu():
    """to_empty unties, init_states re-ties keeping lm_head's tensor: served on tok_embeddings.weight either way."""
    build, init = torchtitan("qwen3", "debugmodel")
    on_meta = zoo_run(build, init, 3)[0]
    on_cpu = build()  # tied throughout
    with torch.no_grad(), intercept(on_cpu, seed=3) as ctx:
        init(on_cpu)
    assert on_cpu.tok_embeddings.weight is on_cpu.lm_head.weight
    assert "lm_head.weight" not in {r.stream for r in ctx.log}
    for (name, ours), (_, theirs) in zip(on_meta.named_parameters(), on_cpu.named_parameters(), strict=True):
        assert torch.equal(ours, theirs), name
