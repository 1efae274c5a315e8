#!/usr/bin/env bash
# Installs the framework versions the integration tests pin, next to the torch that is already installed
# (never replacing it: these packages would otherwise pull a multi-GB CUDA build).
#   bash tests/integration/install.sh              transformers, torchtitan, timm, litgpt, OLMo-core
#   bash tests/integration/install.sh --megatron   also megatron-core (built from its sdist, about a minute)
set -euo pipefail
cd "$(dirname "$0")/../.."
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
python -c 'import torch; print("torch==" + torch.__version__.split("+")[0])' > "$constraints"
# The `integration` extra: transformers and OLMo-core with their dependencies, and what the three below import.
python -m pip install -q -c "$constraints" -e ".[integration]"
# torchtitan pulls wandb/tensorboard/datasets, timm torchvision (whose wheel needs torch's CUDA build), and
# litgpt pins huggingface-hub<1.4 against transformers' >=1.31: none of that is needed to build and init models.
python -m pip install -q -c "$constraints" --no-deps torchtitan==0.3.0 timm==1.0.31 litgpt==0.5.13
if [ "${1:-}" = "--megatron" ]; then
  # megatron-core 0.19.2 publishes a cp312-only wheel; its sdist builds on 3.10+ (its only C++ piece, a
  # dataset helper, is optional).
  python -m pip install -q -c "$constraints" --no-deps --ignore-requires-python megatron-core==0.19.2
fi
