"""Package-level behaviour: what `import elue_hf` does and does not do."""

import json
import os
import subprocess
import sys


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
