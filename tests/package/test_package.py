"""Package-level behaviour: what `import elue_hf` does and does not do."""

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # seconds per test: `make test-fast` skips this module


def test_import_registers_everything_and_stays_light(tmp_path):
    code = (
        "import sys, json, elue_hf\n"
        "from transformers import AutoConfig\n"
        "from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING\n"
        "heavy = [m for m in ('gradio', 'evaluate', 'datasets', 'matplotlib', 'scattertext') if m in sys.modules]\n"
        "print(json.dumps({'heavy': heavy, 'auto': type(AutoConfig.for_model('elasticbert')).__name__,"
        " 'hashee': type(AutoConfig.for_model('hashee_bert')).__name__,"
        " 'lpt': 'LPT' in PEFT_TYPE_TO_CONFIG_MAPPING}))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"heavy": [], "auto": "ElasticBertConfig", "hashee": "HashEEBertConfig", "lpt": True}


def test_registration_waits_for_its_library_and_survives_every_import_order(tmp_path):
    """`import elue_hf` alone loads neither torch nor transformers; whichever module pulls transformers / peft in
    first, ElasticBERT, HashEE, LPT and the ElasticBERT pipeline are registered before a model can be loaded."""
    check = (
        "\nfrom transformers import AutoConfig\nfrom peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING\n"
        "from transformers.pipelines import SUPPORTED_TASKS\n"
        "print(type(AutoConfig.for_model('elasticbert')).__name__, type(AutoConfig.for_model('hashee_bert')).__name__,"
        " 'LPT' in PEFT_TYPE_TO_CONFIG_MAPPING, str(SUPPORTED_TASKS['text-classification']['impl']).split('.')[-1],"
        " SUPPORTED_TASKS['elasticbert-text-classification']['impl'].__name__)\n"
    )
    first = [
        "import sys, elue_hf\nassert not {'torch', 'transformers', 'peft'} & set(sys.modules), sys.modules.keys()",
        "import elue_hf.elasticbert.pretraining",  # transformers is first imported inside elue_hf.elasticbert
        "import elue_hf.lpt.config",  # peft (and transformers) first imported inside elue_hf.lpt
        "import elue_hf.hashee.auto",  # transformers first imported inside elue_hf.hashee
        "import elue_hf.elasticbert",
        "import transformers, peft, elue_hf",
        "from transformers import pipeline\nimport elue_hf",
        "import elue_hf.elasticbert.pipeline",  # transformers.pipelines first imported inside the pipeline module
        "from elue_hf.deploy.pipeline import OnnxTextClassificationPipeline",  # the README's export -> pipeline
    ]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    for code in first:
        done = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c", code + check],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, (code, done.stderr[-2000:])
        expected = ["ElasticBertConfig", "HashEEBertConfig", "True", "TextClassificationPipeline",
                    "ElasticBertTextClassificationPipeline"]
        assert done.stdout.split() == expected, code
