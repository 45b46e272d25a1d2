"""ElasticBERT checkpoints: the original fnlp layout loads unchanged; auto_map + trust_remote_code; conversion."""

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForPreTraining, AutoModelForSequenceClassification

from elue_hf import ElasticBertForSequenceClassification
from elue_hf.elasticbert import convert_bert_to_elasticbert
from tests.helpers.elasticbert import padded_batch, tiny_config

LAYERS = 4


def _original_layout_state_dict(cfg) -> dict[str, torch.Tensor]:
    """Random weights under the exact key names of fnlp/elasticbert-base's pytorch_model.bin (after its MLM update)."""
    g = torch.Generator().manual_seed(0)
    d, ff, v = cfg.hidden_size, cfg.intermediate_size, cfg.vocab_size

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.05

    sd = {
        "elasticbert.embeddings.word_embeddings.weight": r(v, d),
        "elasticbert.embeddings.position_embeddings.weight": r(cfg.max_position_embeddings, d),
        "elasticbert.embeddings.token_type_embeddings.weight": r(2, d),
        "elasticbert.embeddings.LayerNorm.weight": 1 + r(d),
        "elasticbert.embeddings.LayerNorm.bias": r(d),
        "elasticbert.embeddings.position_ids": torch.arange(cfg.max_position_embeddings)[None],
    }
    for i in range(LAYERS):
        p = f"elasticbert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            sd[p + f"attention.self.{name}.weight"] = r(d, d)
            sd[p + f"attention.self.{name}.bias"] = r(d)
        sd[p + "attention.output.dense.weight"], sd[p + "attention.output.dense.bias"] = r(d, d), r(d)
        sd[p + "attention.output.LayerNorm.weight"], sd[p + "attention.output.LayerNorm.bias"] = 1 + r(d), r(d)
        sd[p + "intermediate.dense.weight"], sd[p + "intermediate.dense.bias"] = r(ff, d), r(ff)
        sd[p + "output.dense.weight"], sd[p + "output.dense.bias"] = r(d, ff), r(d)
        sd[p + "output.LayerNorm.weight"], sd[p + "output.LayerNorm.bias"] = 1 + r(d), r(d)
        sd[f"elasticbert.encoder.pooler.{i}.dense.weight"] = r(d, d)
        sd[f"elasticbert.encoder.pooler.{i}.dense.bias"] = r(d)
        sd[f"predictions.transforms.{i}.dense.weight"] = r(d, d)
        sd[f"predictions.transforms.{i}.dense.bias"] = r(d)
        sd[f"predictions.transforms.{i}.LayerNorm.weight"] = 1 + r(d)
        sd[f"predictions.transforms.{i}.LayerNorm.bias"] = r(d)
        sd[f"sop_classifier.classifiers.{i}.weight"] = r(2, d)
        sd[f"sop_classifier.classifiers.{i}.bias"] = r(2)
    sd["predictions.bias"] = r(v)
    return sd


@pytest.fixture(scope="module")
def original_checkpoint(tmp_path_factory):
    """A directory laid out like the Hub repo: config.json (as published, 4.6-era) + weights in the original keys."""
    path = tmp_path_factory.mktemp("elasticbert-original")
    cfg = tiny_config(num_hidden_layers=LAYERS, max_output_layers=LAYERS, num_output_layers=LAYERS)
    sd = _original_layout_state_dict(cfg)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path / "model.safetensors"))
    config = {
        "architectures": ["ElasticBertForMaskedLM"],
        "model_type": "elasticbert",
        "attention_probs_dropout_prob": 0.1,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": cfg.hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": cfg.intermediate_size,
        "layer_norm_eps": 1e-08,
        "max_output_layers": LAYERS,
        "max_position_embeddings": cfg.max_position_embeddings,
        "num_attention_heads": cfg.num_attention_heads,
        "num_hidden_layers": LAYERS,
        "num_output_layers": LAYERS,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "transformers_version": "4.6.0.dev0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": cfg.vocab_size,
    }
    (path / "config.json").write_text(json.dumps(config))
    return path, sd


def _load(auto_cls, path, **kwargs):
    model, info = auto_cls.from_pretrained(path, output_loading_info=True, **kwargs)
    return model.eval(), info


@pytest.mark.parametrize("k", [1, 2, LAYERS])
def test_static_k_loads_first_k_layers_and_pooler_k(original_checkpoint, k):
    path, sd = original_checkpoint
    model, info = _load(AutoModelForSequenceClassification, path, num_hidden_layers=k, num_output_layers=1)
    assert isinstance(model, ElasticBertForSequenceClassification) and model.is_static
    assert len(model.elasticbert.encoder.layer) == k
    assert info["unexpected_keys"] == set() or info["unexpected_keys"] == []
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight"]
    assert model.config.layer_norm_eps == 1e-8
    loaded = model.state_dict()
    pooler = f"elasticbert.encoder.pooler.{k - 1}.dense.weight"
    assert torch.equal(loaded[pooler], sd[pooler])
    assert [key for key in loaded if ".pooler." in key] == [pooler, pooler.replace("weight", "bias")]
    for key in (f"elasticbert.encoder.layer.{k - 1}.output.dense.weight", "elasticbert.embeddings.LayerNorm.bias"):
        assert torch.equal(loaded[key], sd[key])


def test_dynamic_model_and_backbone_load_without_noise(original_checkpoint, caplog):
    path, sd = original_checkpoint
    with caplog.at_level(logging.WARNING):
        model, info = _load(AutoModelForSequenceClassification, path, num_labels=3)
        backbone, binfo = _load(AutoModel, path)
    assert not info["unexpected_keys"] and not binfo["unexpected_keys"] and not binfo["missing_keys"]
    assert all(key.startswith("classifiers.") for key in info["missing_keys"])
    assert len(model.classifiers) == LAYERS
    for i in range(LAYERS):
        assert torch.equal(backbone.encoder.pooler[i].dense.bias, sd[f"elasticbert.encoder.pooler.{i}.dense.bias"])
    assert "predictions" not in caplog.text and "sop_classifier" not in caplog.text


def test_pretraining_heads_load(original_checkpoint):
    path, sd = original_checkpoint
    pre, info = _load(AutoModelForPreTraining, path)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert torch.equal(pre.predictions.bias, sd["predictions.bias"])
    assert torch.equal(pre.predictions.decoder.weight, sd["elasticbert.embeddings.word_embeddings.weight"])
    assert torch.equal(pre.sop_classifier.classifiers[3].weight, sd["sop_classifier.classifiers.3.weight"])
    mlm, info = _load(AutoModelForMaskedLM, path)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert torch.equal(mlm.predictions.transforms[2].LayerNorm.bias, sd["predictions.transforms.2.LayerNorm.bias"])


def test_k_beyond_max_output_layers_is_a_clear_error(original_checkpoint):
    path, _ = original_checkpoint
    with pytest.raises(ValueError, match="num_hidden_layers=5 is out of range"):
        AutoModelForSequenceClassification.from_pretrained(path, num_hidden_layers=5, num_output_layers=1)
    with pytest.raises(ValueError, match="num_output_layers=4 must be between 1 and num_hidden_layers=2"):
        AutoModelForSequenceClassification.from_pretrained(path, num_hidden_layers=2)


def test_mismatched_checkpoint_shapes_are_a_clear_error(original_checkpoint, tmp_path):
    path, sd = original_checkpoint
    bad = dict(sd)
    bad["elasticbert.encoder.layer.1.intermediate.dense.weight"] = torch.zeros(48, 32)
    save_file({k: v.contiguous() for k, v in bad.items()}, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    mismatch = r"layer\.1\.intermediate\.dense\.weight: checkpoint \(48, 32\) vs model \(64, 32\)"
    with pytest.raises(ValueError, match=mismatch):
        AutoModelForSequenceClassification.from_pretrained(tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_save_writes_auto_map_and_loads_without_elue_hf(tmp_path, pooling):
    torch.manual_seed(0)
    model = ElasticBertForSequenceClassification(tiny_config(pooling=pooling)).eval()
    model.save_pretrained(tmp_path / "saved")
    config = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert {"AutoConfig", "AutoModel", "AutoModelForSequenceClassification"} <= set(config["auto_map"])
    assert config["auto_map"]["AutoModelForSequenceClassification"].startswith("modeling_elasticbert.")
    assert (tmp_path / "saved" / "modeling_elasticbert.py").exists()
    assert (tmp_path / "saved" / "configuration_elasticbert.py").exists()
    ids, mask = padded_batch()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).logits
    torch.save({"ids": ids, "mask": mask}, tmp_path / "inputs.pt")
    script = textwrap.dedent(
        """
        import sys
        class BlockEluE:  # make `import elue_hf` impossible in this process
            def find_spec(self, name, path=None, target=None):
                if name == "elue_hf" or name.startswith("elue_hf."):
                    raise ImportError("elue_hf is blocked in this test")
        sys.meta_path.insert(0, BlockEluE())
        import torch
        from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification
        d = sys.argv[1]
        inputs = torch.load(d + "/inputs.pt", weights_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(d + "/saved", trust_remote_code=True).eval()
        assert "elue_hf" not in sys.modules
        try:
            import elue_hf  # noqa: F401
            raise SystemExit("elue_hf was importable")
        except ImportError:
            pass
        with torch.no_grad():
            logits = model(input_ids=inputs["ids"], attention_mask=inputs["mask"]).logits
        torch.save(logits, d + "/remote_logits.pt")
        # the classifier checkpoint has no MLM head: remote code initialises it (never left on the meta device)
        mlm = AutoModelForMaskedLM.from_pretrained(d + "/saved", trust_remote_code=True)
        assert {p.device.type for p in mlm.parameters()} == {"cpu"}
        mlm(input_ids=inputs["ids"], attention_mask=inputs["mask"], labels=inputs["ids"]).loss.backward()
        print(type(model).__module__, model.config.pooling)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "transformers_modules" in done.stdout and done.stdout.split()[-1] == pooling
    remote = torch.load(tmp_path / "remote_logits.pt", weights_only=True)
    assert torch.equal(remote, expected)


@pytest.mark.slow
def test_convert_real_minilm_matches_bert(minilm_dir, tmp_path):
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    bert = BertModel.from_pretrained(minilm_dir).eval()
    model = convert_bert_to_elasticbert(bert, num_labels=2, save_directory=tmp_path / "eb")
    batch = tokenizer(
        ["a gripping, beautifully acted film.", "dull and far too long, with no laughs at all"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        reference = bert(**batch)
        ours = model.elasticbert(**batch)
    torch.testing.assert_close(ours.last_hidden_state, reference.last_hidden_state, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.pooler_output, reference.pooler_output, atol=1e-5, rtol=0)
    # every exit's pooler starts from BERT's pooler
    assert all(torch.equal(p.dense.weight, bert.pooler.dense.weight) for p in model.elasticbert.encoder.pooler)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "eb").eval()
    assert reloaded.config.max_output_layers == 6 and reloaded.config.num_output_layers == 6
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**batch).all_logits, model(**batch).all_logits)
    # static 3-layer view of the converted checkpoint, straight from the saved directory
    static = AutoModelForSequenceClassification.from_pretrained(
        tmp_path / "eb", num_hidden_layers=3, num_output_layers=1
    )
    assert len(static.elasticbert.encoder.layer) == 3


def test_convert_rejects_non_bert():
    with pytest.raises(ValueError, match="expects a BERT checkpoint"):
        convert_bert_to_elasticbert(ElasticBertForSequenceClassification(tiny_config()))
