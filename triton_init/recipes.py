"""Init recipes: small tables of rules mapping each parameter (by module type or name pattern) to its init.

- ``torch``: the effect of ``reset_parameters``: Linear/Conv weights and biases U(+-1/sqrt(fan_in));
  Bilinear and RNN/LSTM/GRU U(+-1/sqrt(in1_features or hidden_size)); MultiheadAttention xavier_uniform
  in-projection and zero biases; Embedding N(0, 1) with the padding row 0; norms 1 and 0; BatchNorm
  running stats 0 and 1.
- ``gpt2``: N(0, 0.02); residual projections (``c_proj``) N(0, 0.02/sqrt(2 n_layers)); biases 0; norms 1, 0.
- ``llama`` (torchtitan): embeddings N(0, 1); weights trunc_normal(0, 0.02) on [-2, 2]; output projections
  (wo, w2, w3) std 0.02/sqrt(2 (layer + 1)) with ``depth_init``, else 0.02/sqrt(2 n_layers); the final
  ``output`` std dim^-0.5 cut at 3 std; norms 1.
- ``megatron``: ``init_method_normal(sigma)`` for every weight; ``scaled_init_method_normal``,
  sigma/sqrt(2 n_layers), for the attention and MLP output projections; biases 0; norms 1 and 0.

The first matching rule wins. A rule matches by module type (``module=``, the type of the module that owns
the parameter) and/or by an ``fnmatch`` pattern on the fully qualified name. Its init is an ``Init``, a
``Computed`` (a function of the ``ParamInfo``, for shape- or depth-dependent values), or any init call
``fn(tensor, *, seed, stream)`` such as ``functools.partial(triton_init.kaiming_normal_, mode="fan_out")``.
"""

import fnmatch
import math
from dataclasses import dataclass, field, replace

import torch.nn as nn

from ._spec import Init


@dataclass(frozen=True)
class ParamInfo:
    """What a rule sees of one parameter or buffer."""

    fqn: str  # fully qualified name, also its stream
    name: str  # name inside the owning module ("weight", "bias", ...)
    module: nn.Module  # the owning module
    shape: tuple  # the logical (global) shape: a DTensor's full shape
    layer: int | None  # the block index in the name ("layers.3.attention.wo.weight" -> 3), if any
    n_layers: int  # the model's number of blocks (from the recipe's options or counted from the names)
    is_buffer: bool = False


@dataclass(frozen=True)
class Computed:
    """An init that depends on the parameter: ``fn(info: ParamInfo) -> Init``."""

    fn: object
    doc: str = ""

    def __call__(self, info: ParamInfo) -> Init:
        return self.fn(info)


@dataclass(frozen=True)
class Rule:
    pattern: str = "*"  # fnmatch on the fully qualified name
    init: object = None  # Init, Computed, an init call, or None to leave the tensor as it is
    module: object = None  # a module type (or tuple of types) the owner must be an instance of
    buffers: bool = False  # whether the rule also applies to buffers

    def matches(self, info: ParamInfo) -> bool:
        if info.is_buffer and not self.buffers:
            return False
        if self.module is not None and not isinstance(info.module, self.module):
            return False
        # "*.weight" also matches a top-level "weight" (the module itself owns it)
        return fnmatch.fnmatchcase(info.fqn, self.pattern) or fnmatch.fnmatchcase("." + info.fqn, self.pattern)


@dataclass(frozen=True)
class Recipe:
    name: str
    rules: tuple
    n_layers: int | None = None  # None: counted from the names
    zero_padding_idx: bool = False  # zero an Embedding's padding_idx row, as torch and HF do
    options: dict = field(default_factory=dict)

    def extend(self, rules) -> "Recipe":
        """This recipe with ``rules`` tried first (user overrides)."""
        return Recipe(self.name, tuple(as_rules(rules)) + self.rules, self.n_layers, self.zero_padding_idx,
                      self.options)

    def lookup(self, info: ParamInfo):
        """(matched, init) for ``info``: the first matching rule's init, resolved if it is ``Computed``."""
        for rule in self.rules:
            if rule.matches(info):
                init = rule.init
                return True, init(info) if isinstance(init, Computed) else init
        return False, None


def as_rules(rules) -> list:
    """Rules from a ``{pattern: init}`` dict, a list of ``(pattern, init)`` pairs, or ``Rule`` objects."""
    if isinstance(rules, dict):
        rules = list(rules.items())
    out = []
    for rule in rules:
        if isinstance(rule, Rule):
            out.append(rule)
        elif isinstance(rule, tuple) and len(rule) == 2 and isinstance(rule[0], str):
            out.append(Rule(rule[0], _check_init(rule[1], rule[0])))
        else:
            raise TypeError(f"a rule must be a Rule or a (pattern, init) pair, got {rule!r}")
    return out


def _check_init(init, pattern):
    if init is None or isinstance(init, (Init, Computed)) or callable(init):
        return init
    raise TypeError(f"the init of rule {pattern!r} must be an Init, a Computed, a callable or None, got {init!r}")


NORMS = (nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.modules.batchnorm._NormBase)
CONVS = (nn.modules.conv._ConvNd,)


def _fans(shape) -> tuple:
    from ._fans import fan_in_and_fan_out

    return fan_in_and_fan_out(shape)


def _fan_in(shape) -> int:
    return _fans(shape)[0]


def _torch_weight_bound(info: ParamInfo) -> Init:
    # kaiming_uniform_(a=sqrt(5)): gain sqrt(2 / 6), bound sqrt(3) * gain / sqrt(fan_in) = 1 / sqrt(fan_in)
    fan_in = _fan_in(info.shape)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return Init.uniform(-bound, bound)


def _torch_bias_bound(info: ParamInfo) -> Init:
    fan_in = _fan_in(tuple(info.module.weight.shape))
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return Init.uniform(-bound, bound)


def _norm_rules() -> list:
    return [
        Rule("*.weight", Init.ones(), module=NORMS),
        Rule("*.bias", Init.zeros(), module=NORMS),
        Rule("*.running_mean", Init.zeros(), module=NORMS, buffers=True),
        Rule("*.running_var", Init.ones(), module=NORMS, buffers=True),
        Rule("*.num_batches_tracked", Init.zeros(), module=NORMS, buffers=True),
    ]


def torch_recipe() -> Recipe:
    """The effect of each layer's ``reset_parameters`` (torch's defaults), as stream-format values."""
    bound_w = Computed(_torch_weight_bound, "U(-1/sqrt(fan_in), 1/sqrt(fan_in))")
    bound_b = Computed(_torch_bias_bound, "U(-1/sqrt(fan_in of the weight), ...)")
    rules = [
        # MultiheadAttention._reset_parameters: xavier_uniform_ in-projection, zero biases (out_proj's too)
        Rule("*in_proj_weight", Computed(_xavier_uniform, "xavier_uniform"), module=nn.MultiheadAttention),
        Rule("*.[qkv]_proj_weight", Computed(_xavier_uniform, "xavier_uniform"), module=nn.MultiheadAttention),
        Rule("*in_proj_bias", Init.zeros(), module=nn.MultiheadAttention),
        Rule("*.bias_[kv]", Computed(_xavier_normal, "xavier_normal"), module=nn.MultiheadAttention),
        Rule("*out_proj.bias", Init.zeros(), module=nn.modules.linear.NonDynamicallyQuantizableLinear),
        Rule("*.weight", bound_w, module=(nn.Linear,) + CONVS),
        Rule("*.bias", bound_b, module=(nn.Linear,) + CONVS),
        Rule("*", Computed(_bilinear_bound, "U(-1/sqrt(in1_features), ...)"), module=nn.Bilinear),
        Rule("*", Computed(_rnn_bound, "U(-1/sqrt(hidden_size), ...)"), module=nn.RNNBase),
        Rule("*.weight", Init.normal(0.0, 1.0), module=(nn.Embedding, nn.EmbeddingBag)),
        *_norm_rules(),
    ]
    return Recipe("torch", tuple(rules), zero_padding_idx=True)


def _symmetric_uniform(bound: float) -> Init:
    return Init.uniform(-bound, bound)


def _xavier_uniform(info: ParamInfo) -> Init:
    fan_in, fan_out = _fans(info.shape)
    return _symmetric_uniform(math.sqrt(6.0 / (fan_in + fan_out)))


def _xavier_normal(info: ParamInfo) -> Init:
    fan_in, fan_out = _fans(info.shape)
    return Init.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)))


def _bilinear_bound(info: ParamInfo) -> Init:
    return _symmetric_uniform(1.0 / math.sqrt(info.module.weight.shape[1]))


def _rnn_bound(info: ParamInfo) -> Init:
    hidden = info.module.hidden_size
    return _symmetric_uniform(1.0 / math.sqrt(hidden) if hidden > 0 else 0.0)


def _depth_scaled(std: float) -> Computed:
    def scaled(info: ParamInfo) -> Init:
        return Init.normal(0.0, std / math.sqrt(2.0 * info.n_layers))

    return Computed(scaled, f"N(0, {std}/sqrt(2 n_layers))")


def gpt2_recipe(std: float = 0.02, n_layers: int | None = None) -> Recipe:
    """GPT-2 (HF ``GPT2PreTrainedModel._init_weights``)."""
    rules = [
        *_norm_rules(),
        Rule("*.c_proj.weight", _depth_scaled(std)),
        Rule("*.bias", Init.zeros()),
        Rule("*.weight", Init.normal(0.0, std)),
    ]
    return Recipe("gpt2", tuple(rules), n_layers=n_layers, zero_padding_idx=True, options={"std": std})


LLAMA_OUTPUT_PROJECTIONS = ("*.attention.wo.weight", "*.feed_forward.w2.weight", "*.feed_forward.w3.weight",
                            "*.self_attn.o_proj.weight", "*.mlp.down_proj.weight", "*.mlp.up_proj.weight")


def llama_recipe(std: float = 0.02, depth_init: bool = True, n_layers: int | None = None) -> Recipe:
    """torchtitan's Llama init: trunc_normal(0, 0.02) on torch's default absolute bounds [-2, 2]."""

    def projection(info: ParamInfo) -> Init:
        if depth_init and info.layer is not None:
            return Init.trunc_normal(0.0, std / math.sqrt(2.0 * (info.layer + 1)))
        return Init.trunc_normal(0.0, std / math.sqrt(2.0 * info.n_layers))

    def final_output(info: ParamInfo) -> Init:
        final_std = info.shape[-1] ** -0.5
        return Init.trunc_normal(0.0, final_std, -3.0 * final_std, 3.0 * final_std)

    rules = [
        Rule("*", Init.normal(0.0, 1.0), module=nn.Embedding),
        *_norm_rules(),
        *(Rule(p, Computed(projection, "depth-scaled trunc_normal")) for p in LLAMA_OUTPUT_PROJECTIONS),
        Rule("output.weight", Computed(final_output, "trunc_normal(0, dim^-0.5) on +-3 std")),
        Rule("*lm_head.weight", Computed(final_output, "trunc_normal(0, dim^-0.5) on +-3 std")),
        Rule("*.bias", Init.zeros()),
        Rule("*.weight", Init.trunc_normal(0.0, std)),
    ]
    return Recipe("llama", tuple(rules), n_layers=n_layers,
                  options={"std": std, "depth_init": depth_init})


MEGATRON_OUTPUT_PROJECTIONS = ("*.self_attention.linear_proj.weight", "*.mlp.linear_fc2.weight",
                               "*.attention.dense.weight", "*.mlp.dense_4h_to_h.weight",
                               "*.attention.wo.weight", "*.feed_forward.w2.weight", "*.c_proj.weight",
                               "*.self_attn.o_proj.weight", "*.mlp.down_proj.weight")


def megatron_recipe(sigma: float = 0.02, n_layers: int | None = None) -> Recipe:
    """Megatron-LM: init_method_normal(sigma), scaled_init_method_normal(sigma, n_layers) on outputs."""
    rules = [
        *_norm_rules(),
        *(Rule(p, _depth_scaled(sigma)) for p in MEGATRON_OUTPUT_PROJECTIONS),
        Rule("*.bias", Init.zeros()),
        Rule("*.weight", Init.normal(0.0, sigma)),
    ]
    return Recipe("megatron", tuple(rules), n_layers=n_layers, options={"sigma": sigma})


RECIPES = {"torch": torch_recipe, "gpt2": gpt2_recipe, "llama": llama_recipe, "megatron": megatron_recipe}


def get(recipe, **options) -> Recipe:
    """A recipe by name (with its options, e.g. ``get("llama", depth_init=False)``), a ``Recipe``, or a
    user rule table (``{pattern: init}`` or ``[(pattern, init), ...]``)."""
    if isinstance(recipe, Recipe):
        unknown = set(options) - {"n_layers"}
        if unknown:
            raise TypeError(f"options {sorted(unknown)} apply to recipes given by name, not to a Recipe")
        return replace(recipe, n_layers=options["n_layers"]) if "n_layers" in options else recipe
    if isinstance(recipe, str):
        if recipe not in RECIPES:
            raise ValueError(f"unknown recipe {recipe!r}; known: {', '.join(RECIPES)}")
        return RECIPES[recipe](**options)
    return Recipe("user", tuple(as_rules(recipe)), n_layers=options.get("n_layers"))
