"""factlocate's attribution patching against TransformerLens's own `attribution_patch`, on STR pairs.

The mapping between the two (mlp cells = "mlp_out" nodes; attn cells = the sum of a layer's "attn_head_out"
nodes; the same denoising sign) is documented in `tools/atp_parity.py`, which also runs the comparison on an
embedded model (`notes/atp.md`).
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformer_lens.tools.analysis.attribution_patching")

from tools.atp_parity import compare  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_str_atp_matches_transformer_lens_attribution_patch(tiny_dirs, arch):
    from factlocate import load_model

    result = compare(load_model(tiny_dirs[arch]), "The capital of Roman Republic is", "Roman Republic")
    for kind in ("mlp", "attn"):
        scale = result["kinds"][kind]["largest_effect"]
        assert scale > 1e-6  # the comparison is not between zeros
        np.testing.assert_allclose(result["mine"][kind], result["theirs"][kind], atol=1e-5 * max(1.0, scale),
                                   rtol=1e-4)
