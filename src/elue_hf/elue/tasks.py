"""The six ELUE tasks (docs/elue.md, "Tasks"): fields, labels, metrics, sizes, file layouts, Hub sources."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["HubSource", "ElueTask", "TASKS", "TASK_KEYS", "get_task"]


@dataclass(frozen=True)
class HubSource:
    """A public Hub dataset holding the same data, and how its columns map onto ours (see ``data.from_hub``).

    These mappings come from the dataset cards and could not be re-checked against the Hub from this
    environment (no network); ``notes`` says where the Hub copy differs from the ELUE files.
    """

    repo: str
    config: str | None
    splits: dict[str, str]  # our split -> Hub split
    columns: dict[str, str]  # our column -> Hub column
    label: str  # how the Hub label becomes ours: "same", "drop_negative", "sst_threshold", "scitail_names"
    notes: str = ""


@dataclass(frozen=True)
class ElueTask:
    key: str  # ELUE key, e.g. "sst-2"
    name: str  # display name, e.g. "SST-2"
    dir_name: str  # folder of the original layout
    site_name: str  # name used by the ELUE website scorer
    text_fields: tuple[str, ...]  # our column names, in model input order
    label_names: tuple[str, ...] | None  # None: regression
    metric: str  # main metric key: "acc", "acc_and_f1", "corr"
    sizes: dict[str, int]  # train / dev / test sizes (paper), "test_file" = rows in the public test file
    tsv_columns: dict[str, tuple[str, ...]]  # file -> header columns (informational; files are read by position)
    hub: HubSource | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_regression(self) -> bool:
        return self.label_names is None

    @property
    def num_labels(self) -> int:
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_pair(self) -> bool:
        return len(self.text_fields) == 2

    @property
    def test_size(self) -> int:
        return self.sizes["test_file"]


_STD_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
_SINGLE_TSV = {"train": ("sentence", "label"), "dev": ("sentence", "label"), "test": ("index", "sentence"),
               "test_full": ("sentence", "label")}


def _pair_tsv(a: str, b: str) -> dict[str, tuple[str, ...]]:
    return {"train": (a, b, "label"), "dev": (a, b, "label"), "test": ("index", a, b), "test_full": (a, b, "label")}


_MRPC_TSV = {
    "train": ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
    "dev": ("Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"),
    "test": ("index", "#1 ID", "#2 ID", "#1 String", "#2 String"),
    "test_full": ("label", "#1 ID", "#2 ID", "#1 String", "#2 String"),
}

TASKS: dict[str, ElueTask] = {
    t.key: t
    for t in (
        ElueTask(
            key="sst-2", name="SST-2", dir_name="SST-2", site_name="sst",
            text_fields=("sentence",), label_names=("negative", "positive"), metric="acc",
            sizes={"train": 8544, "dev": 1101, "test": 2208, "test_file": 2210}, tsv_columns=_SINGLE_TSV,
            hub=HubSource(
                "stanfordnlp/sst", "default", _STD_SPLITS,
                {"sentence": "sentence", "label": "label"}, "sst_threshold",
                "Full SST sentences (8,544 / 1,101 / 2,210) with a sentiment score in [0, 1]; label = score > 0.5. "
                "Never GLUE SST-2 (phrases, 67,349 / 872). The thresholding rule is our reading of the split sizes.",
            ),
            aliases=("sst", "sst2"),
        ),
        ElueTask(
            key="imdb", name="IMDb", dir_name="IMDb", site_name="imdb",
            text_fields=("sentence",), label_names=("negative", "positive"), metric="acc",
            sizes={"train": 20000, "dev": 5000, "test": 25000, "test_file": 25000}, tsv_columns=_SINGLE_TSV,
            hub=HubSource(
                "stanfordnlp/imdb", "plain_text", {"train": "train", "test": "test"},
                {"sentence": "text", "label": "label"}, "same",
                "Hub test = ELUE test (25,000). ELUE's dev is 2.5k positive + 2.5k negative taken out of the original "
                "train set; which ones is not published, so `from_hub` makes a seeded balanced 5,000 dev split.",
            ),
        ),
        ElueTask(
            key="mrpc", name="MRPC", dir_name="MRPC", site_name="mrpc",
            text_fields=("sentence1", "sentence2"), label_names=("not_paraphrase", "paraphrase"),
            metric="acc_and_f1", sizes={"train": 3668, "dev": 408, "test": 1725, "test_file": 1725},
            tsv_columns=_MRPC_TSV,
            hub=HubSource(
                "SetFit/mrpc", None, _STD_SPLITS,
                {"sentence1": "text1", "sentence2": "text2", "label": "label"}, "same",
                "Labelled test set (GLUE's nyu-mll/glue mrpc test has label -1).",
            ),
        ),
        ElueTask(
            key="sts-b", name="STS-B", dir_name="STS-B", site_name="sts",
            text_fields=("sentence1", "sentence2"), label_names=None, metric="corr",
            sizes={"train": 5749, "dev": 1500, "test": 1379, "test_file": 1379},
            tsv_columns=_pair_tsv("sentence1", "sentence2"),
            hub=HubSource(
                "mteb/stsbenchmark-sts", None, _STD_SPLITS,
                {"sentence1": "sentence1", "sentence2": "sentence2", "label": "score"}, "same",
                "Scores in [0, 5] with test labels (GLUE's stsb test is unlabelled).",
            ),
            aliases=("sts", "stsb", "sts_b"),
        ),
        ElueTask(
            key="snli", name="SNLI", dir_name="SNLI", site_name="snli",
            text_fields=("premise", "hypothesis"), label_names=("entailment", "neutral", "contradiction"),
            metric="acc", sizes={"train": 549367, "dev": 9842, "test": 9824, "test_file": 9824},
            tsv_columns=_pair_tsv("premise", "hypothesis"),
            hub=HubSource(
                "stanfordnlp/snli", "plain_text", _STD_SPLITS,
                {"premise": "premise", "hypothesis": "hypothesis", "label": "label"}, "drop_negative",
                "Pairs without a gold label (label -1) are dropped, giving 549,367 / 9,842 / 9,824. ELUE used the "
                "spell-checked dev/test files, so a few texts may differ from the Hub copy.",
            ),
        ),
        ElueTask(
            key="scitail", name="SciTail", dir_name="SciTail", site_name="scitail",
            text_fields=("premise", "hypothesis"), label_names=("neutral", "entails"), metric="acc",
            sizes={"train": 23596, "dev": 1304, "test": 2126, "test_file": 2126},
            tsv_columns=_pair_tsv("premise", "hypothesis"),
            hub=HubSource(
                "allenai/scitail", "snli_format", _STD_SPLITS,
                {"premise": "sentence1", "hypothesis": "sentence2", "label": "gold_label"}, "scitail_names",
                "snli_format has 23,596 / 1,304 / 2,126 rows (tsv_format has only 23,097 train rows); "
                "gold_label 'entailment' -> 1 entails, 'neutral' -> 0.",
            ),
        ),
    )
}

TASK_KEYS: tuple[str, ...] = tuple(TASKS)

_ALIASES = {}
for _t in TASKS.values():
    for _name in (_t.key, _t.name, _t.dir_name, _t.site_name, *_t.aliases):
        _ALIASES[_name.lower().replace("_", "-")] = _t.key
        _ALIASES[_name.lower().replace("-", "").replace("_", "")] = _t.key


def get_task(name: str | ElueTask) -> ElueTask:
    """Look a task up by ELUE key, display name, folder name, website name or alias (case-insensitive)."""
    if isinstance(name, ElueTask):
        return name
    if not isinstance(name, str):
        raise ValueError(f"task must be a string, got {type(name).__name__}")
    key = _ALIASES.get(name.strip().lower().replace("_", "-")) or _ALIASES.get(
        name.strip().lower().replace("-", "").replace("_", "")
    )
    if key is None:
        raise ValueError(f"unknown ELUE task {name!r}; known tasks: {', '.join(TASK_KEYS)}")
    return TASKS[key]
