"""LPT FLOPs (elue_hf.methods.lpt_flops) against numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from elue_hf.elue.flops import ModelDims
from elue_hf.methods.lpt_flops import PromptShape, late_prompt_flops, late_prompt_macs, prompt_shape

# d = 4, d_ff = 8, 2 heads, 3 layers, 2 labels; one instance of n = 5 tokens, prompt of l = 2 after k = 1 layer, m = 3
DIMS = ModelDims(hidden=4, intermediate=8, heads=2, num_layers=3, num_labels=2, exit_layers=(3,))
# layer at n tokens: 4 n d^2 + 2 n d d_ff + 2 n^2 (h + d) + 4 n d
LAYER_5 = 4 * 5 * 16 + 2 * 5 * 4 * 8 + 2 * 25 * 6 + 4 * 5 * 4  # 1020
LAYER_7 = 4 * 7 * 16 + 2 * 7 * 4 * 8 + 2 * 49 * 6 + 4 * 7 * 4  # 1596 (5 tokens + 2 prompt vectors)
EMB, EXIT = 2 * 5 * 4, 4 * 4 + 4 * 2  # embedding LayerNorm 2 n d; pooler d^2 + classifier d C


@pytest.mark.parametrize("generator, generator_macs", [
    ("npg", 4 * 3 + 3 * 2 * 4),  # d m + m l d = 36
    ("appg", 5 * 4 * 3 + 2 * 3 * 4),  # n d m + l m d = 84
    ("mppg", 84),
    ("none", 0),
])
def test_full_depth_by_hand(generator, generator_macs):
    shape = PromptShape(layer=1, tokens=2, generator=generator, bottleneck=3)
    expected = EMB + LAYER_5 + 2 * LAYER_7 + generator_macs + EXIT
    assert LAYER_5 == 1020 and LAYER_7 == 1596
    assert late_prompt_macs(DIMS, shape, [5]).tolist() == [expected]
    assert late_prompt_flops(DIMS, shape, [5]).tolist() == pytest.approx([2 * expected / 1e6])


def test_an_exit_below_the_prompt_runs_no_generator():
    shape = PromptShape(layer=1, tokens=2, generator="npg", bottleneck=3)
    assert late_prompt_macs(DIMS, shape, [5], exit_layer=1).tolist() == [EMB + LAYER_5 + EXIT]
    assert late_prompt_macs(DIMS, shape, [5], exit_layer=2).tolist() == [EMB + LAYER_5 + LAYER_7 + 36 + EXIT]
    with pytest.raises(ValueError, match="exit_layer must lie in"):
        late_prompt_macs(DIMS, shape, [5], exit_layer=4)


def test_vectorised_and_read_from_an_adapter_config():
    shape = prompt_shape({"prompt_layer": 1, "num_prompt_tokens": 2, "generator": "appg", "bottleneck_size": 3}, 3)
    assert shape == PromptShape(1, 2, "appg", 3)
    assert prompt_shape({"prompt_layer": None, "num_prompt_tokens": 2}, 12).layer == 6  # the default L // 2
    both = late_prompt_macs(DIMS, shape, np.array([5, 5]))
    assert both.tolist() == [EMB + LAYER_5 + 2 * LAYER_7 + 84 + EXIT] * 2
    with pytest.raises(ValueError, match="generator must be one of"):
        PromptShape(1, 2, "magic", 3)


@pytest.mark.parametrize("generator", ["npg", "appg", "mppg", "none"])
def test_the_hooked_counter_agrees_on_a_running_lpt_model(generator):
    """The closed form against ELUE's forward hooks on a real LPT model (one unpadded instance of 7 tokens)."""
    import torch
    from peft import get_peft_model
    from transformers import BertForSequenceClassification

    from elue_hf.elue.flops import ElueFlopsCounter, dims_from_config
    from elue_hf.lpt import LPTConfig
    from elue_hf.methods.lpt_points import lpt_prompt_shape
    from tests.helpers.lpt import bert_config

    torch.manual_seed(0)
    base = BertForSequenceClassification(bert_config(num_labels=2))
    model = get_peft_model(base, LPTConfig(task_type="SEQ_CLS", num_prompt_tokens=3, bottleneck_size=8,
                                           prompt_layer=1, generator=generator)).eval()
    shape = lpt_prompt_shape(model)
    assert shape == PromptShape(1, 3, generator, 8)
    ids = torch.randint(5, 50, (1, 7))
    with torch.no_grad(), ElueFlopsCounter(model) as counter:
        model(input_ids=ids, attention_mask=torch.ones_like(ids))
    expected = late_prompt_flops(dims_from_config(model.config), shape, [7])
    assert counter.per_instance_mflops.tolist() == pytest.approx(expected.tolist(), rel=1e-12)
