"""ELUE leaderboard Space.

Thin on purpose: everything (store, ranking, plots, submission checks) lives in the tested package
``elue_hf.leaderboard``. Configuration comes from the Space's variables and secrets:

- ``ELUE_RESULTS_REPO``  Hub dataset repo that keeps the results (one JSON per entry); unset = local SQLite;
- ``HF_TOKEN``           write token for that repo (a Space secret);
- ``ELUE_LEADERBOARD_DB`` SQLite path (or the Hub store's local cache), e.g. /data/leaderboard.db on persistent storage;
- ``ELUE_DATA_DIR``      ELUE data with <Task>/test_full.tsv (gold labels); unset = submissions closed;
- ``ELUE_HF_REFERENCE``  optional reference-curve JSON (e.g. with recomputed IMDb FLOPs);
- ``ELUE_TOKENIZER_DIR`` the allowed tokenizers (one folder per Hub id, owner--name) for the token-length check; at
  start-up the app counts their lengths on each test set in a subprocess (``elue-hf leaderboard-prepare``);
- who may submit: the Hub's "Sign in" (the card says ``hf_oauth: true``), ``ELUE_SUBMIT_TOKENS``,
  ``ELUE_ALLOW_ANONYMOUS`` (see ``elue_hf.spaces.leaderboard.identity``).
"""

from elue_hf.spaces.leaderboard.app import app_from_env, launch

demo = app_from_env()

if __name__ == "__main__":
    launch(demo, host="0.0.0.0", port=7860)
