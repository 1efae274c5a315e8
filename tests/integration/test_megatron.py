"""megatron-core 0.19.2: not served yet, and said so.

Megatron initializes each parameter inside its layer's constructor (``_initialize_affine_weight_cpu/gpu`` with
the ``init_method`` partials of its config), before the model exists, and offers no init to run again after
``to_empty``: ``intercept(model)`` has no model to map streams from while those writes happen. What it would
need (serving writes into parameters created inside the context, then re-serving them on their streams once
the model is known) is listed in the README's known limits. Running this file: ``bash
tests/integration/install.sh --megatron`` installs megatron-core 0.19.2 from its sdist (its wheel is cp312-only).
"""

import pytest
from framework_checks import require


def test_megatron_initializes_in_constructors():
    require("megatron.core", "megatron-core 0.19.2 (bash tests/integration/install.sh --megatron)")
    pytest.skip("megatron-core initializes parameters inside its layer constructors, before a model exists for "
                "intercept(model) to map: not supported yet (README: Inside your framework, known limits)")
