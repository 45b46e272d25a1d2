"""The ``elue-hf`` sub-commands, one module per area; each exposes ``register(subparsers)`` (see :mod:`elue_hf.cli`)."""
