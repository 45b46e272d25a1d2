"""``accelerate launch -m elue_hf.elasticbert.pretraining [options]`` (or ``python -m``): ``elue-hf pretrain`` under
accelerate's launcher, with the same options, checks and one-sentence errors (:mod:`elue_hf.commands.pretrain`)."""

from __future__ import annotations

import sys

from ...cli import main

if __name__ == "__main__":
    raise SystemExit(main(["pretrain", *sys.argv[1:]]))
