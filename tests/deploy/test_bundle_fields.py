"""Fast checks of what a bundle writes for the torch-free runtime: the family's FLOPs shape survives JSON, and the
sessions' options (no spinning by default)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from tests.helpers.tiny_families import FAMILIES, tiny_config


@pytest.mark.parametrize("family", FAMILIES)
def test_flops_shape_round_trips_through_the_bundle_json(family):
    from elue_hf.deploy.runtime import _encoder_shape
    from elue_hf.elue.flops.architectures import encoder_shape
    from elue_hf.multiexit import MultiExitConfig

    config = MultiExitConfig(backbone_config=tiny_config(family).to_dict(), num_labels=3)
    shape = encoder_shape(config)
    assert _encoder_shape(json.loads(json.dumps(asdict(shape)))) == shape


def test_session_options_turn_spinning_off_unless_asked():
    from elue_hf.deploy import session_options

    quiet, spinning = session_options(2), session_options(2, spinning=True)
    assert quiet.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert quiet.intra_op_num_threads == 2 and quiet.inter_op_num_threads == 1
    with pytest.raises(Exception):  # entry not set: ONNX Runtime's default (spinning) applies
        spinning.get_session_config_entry("session.intra_op.allow_spinning")
