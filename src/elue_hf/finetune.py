"""``elue-hf train``: fine-tune every exit of a multi-exit classifier on a text-classification dataset with
``transformers.Trainer``.

The model is an ElasticBERT folder / Hub id, any BERT checkpoint (converted first, :mod:`elue_hf.elasticbert.convert`),
a multi-exit model or another encoder :mod:`elue_hf.multiexit` converts. The data
is an ELUE task folder (:mod:`elue_hf.elue.data`) or any ``datasets`` dataset with text and label columns: a Hub id,
or local files through a packaged builder (``csv`` / ``json`` / ``parquet`` with ``data_files``). All exits train
together (gradient equilibrium by default, ``config.multi_exit_training``); evaluation reports every exit's metric
and their average; the output folder holds the model, its tokenizer and the metrics, ready for
``AutoModelForSequenceClassification`` / ``AutoTokenizer`` / ``pipeline`` / ``elue-hf evaluate``. Because the loop is
the ``Trainer``'s, ``accelerate launch`` scales it to several devices.

It sits above the model packages and ELUE's data (``elasticbert``, ``multiexit`` and ``elue`` never import it), so
none of them imports another just to train.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ClassificationData",
    "FinetuneSettings",
    "parse_data_files",
    "load_classification_data",
    "load_model_for_finetuning",
    "finetune",
]

# column sets tried in order when the text columns are not given
_TEXT_COLUMNS = (
    ("sentence1", "sentence2"),
    ("premise", "hypothesis"),
    ("question", "sentence"),
    ("text1", "text2"),
    ("sentence",),
    ("text",),
)
_FILE_BUILDERS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass
class ClassificationData:
    """Train / evaluation splits with their text columns and labels (``label_names=None``: regression)."""

    train: Any
    eval: Any
    text_columns: tuple[str, ...]
    label_names: list[str] | None
    task: Any = None  # the ElueTask when the data is an ELUE task

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)


@dataclass
class FinetuneSettings:
    """The training knobs the command line exposes; ``extra`` goes to ``TrainingArguments`` unchanged."""

    output_dir: str = "elue_hf_outputs/train"
    learning_rate: float = 2e-5
    num_train_epochs: float = 3.0
    max_steps: int = -1
    batch_size: int = 32
    eval_batch_size: int | None = None
    max_length: int = 128
    weight_decay: float = 0.01
    warmup: float = 0.1  # a fraction of the steps (< 1) or a number of steps
    logging_steps: int = 50
    seed: int = 42
    report_to: str = "none"
    overwrite: bool = False  # write into an existing non-empty output_dir (default: refuse, ValueError)
    extra: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------- data


def parse_data_files(spec: str | None):
    """``"train=a.csv,validation=b.csv"`` -> ``{"train": "a.csv", "validation": "b.csv"}``; ``"a.csv"`` -> itself."""
    if not spec:
        return None
    if "=" not in spec:
        return spec
    out = {}
    for part in spec.split(","):
        split, sep, path = part.partition("=")
        if not sep or not split.strip() or not path.strip():
            raise ValueError(f"--data-files takes FILE or SPLIT=FILE[,SPLIT=FILE...], got {spec!r}")
        out[split.strip()] = path.strip()
    return out


def _guess_text_columns(columns: list[str], label_column: str) -> tuple[str, ...]:
    for candidate in _TEXT_COLUMNS:
        if all(c in columns for c in candidate):
            return candidate
    raise ValueError(
        f"cannot tell which columns hold the text among {columns}; pass text_columns (--text-columns A[,B]). "
        f"The label column is {label_column!r}."
    )


def _label_names(train, label_column: str) -> list[str] | None:
    """ClassLabel names; sorted distinct strings; 0..max for integer codes; ``None`` for real-valued labels."""
    import numpy as np
    from datasets import ClassLabel

    feature = train.features[label_column]
    if isinstance(feature, ClassLabel):
        return list(feature.names)
    values = train[label_column]
    if values and all(isinstance(v, str) for v in values):
        return sorted(set(values))
    array = np.asarray(values, dtype=np.float64)
    if array.size == 0 or not np.all(np.isfinite(array)):
        raise ValueError(f"column {label_column!r} has no usable labels (empty or NaN)")
    if np.all(array == np.round(array)) and array.min() >= 0:
        return [str(i) for i in range(int(array.max()) + 1)]
    return None


def _encode_labels(ds, label_column: str, names: list[str] | None):
    """Rename the label column to ``label`` and turn string labels into ids."""
    if label_column != "label":
        if "label" in ds.column_names:
            ds = ds.remove_columns("label")
        ds = ds.rename_column(label_column, "label")
    if names is not None and ds.num_rows and isinstance(ds[0]["label"], str):
        from datasets import ClassLabel

        unknown = sorted(set(ds["label"]) - set(names))
        if unknown:
            raise ValueError(f"labels {unknown[:5]} of the evaluation split do not occur in the training split")
        ds = ds.cast_column("label", ClassLabel(names=names))
    return ds


def _load_hub_or_files(dataset: str, data_files, dataset_config: str | None):
    import datasets

    suffix = Path(dataset).suffix.lower()
    if suffix in _FILE_BUILDERS and Path(dataset).is_file():  # a single local file: its builder, as the train split
        return datasets.load_dataset(_FILE_BUILDERS[suffix], data_files={"train": dataset})
    try:
        return datasets.load_dataset(dataset, dataset_config, data_files=data_files)
    except ConnectionError:  # datasets' message for a Hub id it cannot reach (offline, no network, not cached)
        raise ValueError(f"--dataset {dataset}: not a local file or builder, and it could not be loaded from the Hub "
                         "(offline or unreachable, and not in the local cache): download it once where the Hub is "
                         "reachable, or give local files with --dataset csv --data-files ...") from None


def load_classification_data(
    *,
    data_dir=None,
    task=None,
    dataset: str | None = None,
    data_files=None,
    dataset_config: str | None = None,
    text_columns=None,
    label_column: str = "label",
    train_split: str = "train",
    eval_split: str | None = None,
    eval_fraction: float = 0.1,
    seed: int = 0,
) -> ClassificationData:
    """Training data from an ELUE task folder (``data_dir`` + ``task``) or a ``datasets`` dataset.

    Without an evaluation split (``eval_split``, else ``validation``), ``eval_fraction`` of the training rows are
    held out (seeded). Test splits are never used for training or model selection.
    """
    from .elue.tasks import get_task

    if (data_dir is None) == (dataset is None):
        raise ValueError("give either an ELUE task folder (--data-dir with --task) or a dataset (--dataset)")
    elue_task = get_task(task) if task is not None else None
    if data_dir is not None:
        if elue_task is None:
            raise ValueError("--data-dir needs --task (one of sst-2, imdb, mrpc, sts-b, snli, scitail)")
        from .elue.data import load_elue_task

        splits = load_elue_task(data_dir, elue_task)
        text_columns = elue_task.text_fields
    else:
        splits = _load_hub_or_files(dataset, data_files, dataset_config)
    if train_split not in splits:
        raise ValueError(f"no {train_split!r} split; the data has {list(splits)}")
    train = splits[train_split]
    if label_column not in train.column_names:
        raise ValueError(f"no label column {label_column!r} in {train.column_names}; pass --label-column")
    columns = tuple(text_columns) if text_columns else _guess_text_columns(train.column_names, label_column)
    missing = [c for c in columns if c not in train.column_names]
    if missing:
        raise ValueError(f"text columns {missing} are not in the data (columns: {train.column_names})")
    names = (list(elue_task.label_names) if elue_task.label_names else None) if elue_task else None
    if elue_task is None:
        names = _label_names(train, label_column)
    wanted_eval = eval_split or "validation"
    if wanted_eval in splits:
        evaluation = splits[wanted_eval]
    elif eval_split is not None:
        raise ValueError(f"no {eval_split!r} split; the data has {list(splits)}")
    else:
        held = train.train_test_split(test_size=eval_fraction, seed=seed)
        train, evaluation = held["train"], held["test"]
    train, evaluation = (_encode_labels(ds, label_column, names) for ds in (train, evaluation))
    return ClassificationData(train, evaluation, columns, names, elue_task)


def tokenize_data(data: ClassificationData, tokenizer, max_length: int = 128) -> tuple[Any, Any]:
    """Tokenised train / eval splits (single texts or ``[CLS] A [SEP] B [SEP]`` pairs), labels in ``label``."""

    def encode(batch):
        texts = [[str(t) for t in batch[c]] for c in data.text_columns]
        return tokenizer(*texts, truncation=True, max_length=max_length)

    keep = {"label"}
    out = []
    for ds in (data.train, data.eval):
        drop = [c for c in ds.column_names if c not in keep]
        out.append(ds.map(encode, batched=True, remove_columns=drop))
    return out[0], out[1]


# ------------------------------------------------------------------------------------------------------ model


def load_model_for_finetuning(model, num_labels: int, label_names=None, tokenizer=None, data_name: str = "the data",
                              **config_overrides):
    """``(multi-exit classifier, tokenizer)`` from an ElasticBERT, a BERT, a multi-exit model or any encoder
    ``elue_hf.multiexit`` supports (RoBERTa, XLM-R, CamemBERT, ELECTRA, DistilBERT, DeBERTa-v2/v3, ModernBERT).

    A BERT checkpoint becomes an ElasticBERT, another supported encoder a multi-exit model (every layer gets an
    exit); ``config_overrides`` (e.g. ``num_output_layers``, ``multi_exit_training``) go to the configuration.
    The tokenizer defaults to the one saved with ``model``. A multi-exit classifier whose heads have another number
    of labels than ``num_labels`` is a ``ValueError`` naming the fix (``data_name`` names the data in it).
    """
    from transformers import AutoConfig

    from .elasticbert.convert import convert_bert_to_elasticbert
    from .elasticbert.modeling_elasticbert import ElasticBertForSequenceClassification
    from .tokenizer_io import load_tokenizer

    path = str(model)
    config = AutoConfig.from_pretrained(path)
    labels = {}
    if label_names is not None:
        labels = {"id2label": dict(enumerate(label_names)), "label2id": {n: i for i, n in enumerate(label_names)}}
    if config.model_type == "bert":
        layers = config_overrides.pop("num_output_layers", None)
        built = convert_bert_to_elasticbert(path, num_labels=num_labels, num_output_layers=layers,
                                            **labels, **config_overrides)
    elif config.model_type == "elasticbert":
        trained_heads = any(a.endswith("ForSequenceClassification") for a in config.architectures or [])
        if trained_heads and config.num_labels != num_labels:
            raise ValueError(f"the model has {config.num_labels} labels, {data_name} needs {num_labels}: convert "
                             f"with --num-labels {num_labels} (elue-hf convert --model <its BERT> --num-labels "
                             f"{num_labels}), or train from the BERT itself")
        built = ElasticBertForSequenceClassification.from_pretrained(path, num_labels=num_labels, **labels,
                                                                     **config_overrides)
    else:
        from .multiexit.finetune import load_multi_exit_for_finetuning

        built = load_multi_exit_for_finetuning(path, config, num_labels, labels, config_overrides)
    return built, load_tokenizer(tokenizer, path, required=True)


# -------------------------------------------------------------------------------------------------- training


def _training_arguments(settings: FinetuneSettings, has_eval: bool):
    from transformers import TrainingArguments

    kwargs = dict(
        output_dir=settings.output_dir,
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.num_train_epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.eval_batch_size or settings.batch_size,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup,
        logging_steps=settings.logging_steps,
        eval_strategy="epoch" if has_eval else "no",
        save_strategy="no",
        seed=settings.seed,
        report_to=settings.report_to,
    )
    kwargs.update(settings.extra)
    return TrainingArguments(**kwargs)


def _trainer(model, tokenizer, data: ClassificationData, train, evaluation, settings: FinetuneSettings):
    from transformers import DataCollatorWithPadding, Trainer

    from .elasticbert.training import make_compute_metrics, preprocess_logits_for_metrics

    layers = [i + 1 for i in model.config.exit_layer_indices]
    return Trainer(
        model=model,
        args=_training_arguments(settings, evaluation is not None),
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        data_collator=DataCollatorWithPadding(tokenizer),
        compute_metrics=make_compute_metrics(data.task, layers),
        preprocess_logits_for_metrics=preprocess_logits_for_metrics,
    )


def finetune(model, tokenizer, data: ClassificationData, settings: FinetuneSettings | None = None) -> dict:
    """Train all exits, evaluate every exit, save model + tokenizer + ``eval_results.json`` in ``output_dir``.

    ``config.multi_exit_training == "two_stage"`` runs the DeeBERT schedule: the settings' budget once for stage 1
    (backbone + top exit) and once more for stage 2 (internal exits). Returns the final evaluation metrics.
    """
    from .elasticbert.training import set_training_stage
    from .outputs import refuse_existing
    from .tokenizer_io import save_tokenizer

    settings = settings or FinetuneSettings()
    refuse_existing(settings.output_dir, "output_dir", settings.overwrite, fix="set overwrite=True")
    if data.num_labels != model.config.num_labels:
        raise ValueError(f"the data has {data.num_labels} labels but the model {model.config.num_labels}")
    train, evaluation = tokenize_data(data, tokenizer, settings.max_length)
    stages = [1, 2] if model.config.multi_exit_training == "two_stage" else [None]
    for stage in stages:
        if stage is not None:
            set_training_stage(model, stage)
        trainer = _trainer(model, tokenizer, data, train, evaluation, settings)
        trainer.train()
    if stages[0] is not None:  # leave the model as a fresh two-stage model: all trainable, stage 1 next
        model.requires_grad_(True)
        model.config.training_stage = 1
    metrics = _final_metrics(trainer) if evaluation is not None else {}
    out = Path(settings.output_dir)
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        save_tokenizer(tokenizer, out)
        trainer.save_metrics("eval", metrics)
        (out / "finetune_settings.json").write_text(json.dumps(_summary(data, settings), indent=1) + "\n")
    return metrics


def _final_metrics(trainer) -> dict:
    """The evaluation the Trainer already ran at the last step (end of the last epoch), else a fresh one."""
    step = trainer.state.global_step
    done = [e for e in trainer.state.log_history if "eval_loss" in e and e.get("step") == step]
    if done:
        return {k: v for k, v in done[-1].items() if k != "step"}
    return trainer.evaluate()


def _summary(data: ClassificationData, settings: FinetuneSettings) -> dict:
    return {
        "task": data.task.key if data.task is not None else None,
        "text_columns": list(data.text_columns),
        "label_names": data.label_names,
        "train_rows": data.train.num_rows,
        "eval_rows": data.eval.num_rows if data.eval is not None else 0,
        **{k: v for k, v in vars(settings).items() if k not in ("extra", "overwrite")},
        "output_dir": os.fspath(settings.output_dir),
    }
