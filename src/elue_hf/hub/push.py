"""Push to the Hub: an ElasticBERT model (weights + its model code + ``auto_map``), an LPT adapter, or a Space folder,
each as **one commit** with a generated card whose ``model-index`` carries the ELUE results.

Every helper takes an optional ``api`` (a ``huggingface_hub.HfApi``; one is created with ``token`` otherwise) and
returns what ``HfApi.create_commit`` returns. With ``HF_HUB_OFFLINE=1`` the Hub calls fail at once.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Sequence

from ..tokenizer_io import load_tokenizer, save_tokenizer
from .cards import elasticbert_card, eval_results_from_score, lpt_adapter_card

__all__ = ["PushError", "push_elasticbert", "push_lpt_adapter", "push_space", "space_wheels", "commit_folder",
           "check_remote_code"]

_SKIP = re.compile(r"(^|/)(__pycache__|\.git|\.ipynb_checkpoints)(/|$)|\.pyc$|(^|/)\.[^/]+$")
_PACKAGE_IMPORT = re.compile(r"^\s*(from|import)\s+elue_hf\b", re.MULTILINE)


class PushError(RuntimeError):
    """What would be pushed is not right (the message says what); nothing was uploaded."""


def _api(api, token):
    if api is not None:
        return api
    from huggingface_hub import HfApi

    return HfApi(token=token)


def commit_folder(folder, repo_id: str, repo_type: str = "model", commit_message: str = "Upload with elue-hf",
                  private: bool = False, token: str | None = None, api=None, space_sdk: str | None = None,
                  extra_files: dict[str, Path] | None = None):
    """Create the repo if needed and upload every file of ``folder`` (caches and hidden files skipped) in one commit.

    ``extra_files`` maps paths in the repo to local files uploaded in the same commit (e.g. a Space's wheel).
    """
    from huggingface_hub import CommitOperationAdd

    folder = Path(folder)
    files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*"))
             if p.is_file() and not _SKIP.search(p.relative_to(folder).as_posix())}
    if not files:
        raise PushError(f"nothing to upload in {folder}")
    files.update(extra_files or {})
    api = _api(api, token)
    kwargs = {"space_sdk": space_sdk} if space_sdk else {}
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True, **kwargs)
    operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path)) for name, path in files.items()]
    return api.create_commit(repo_id, operations=operations, commit_message=commit_message, repo_type=repo_type)


def check_remote_code(folder) -> list[str]:
    """The model code files saved with an ``auto_map``; raises :class:`PushError` if one would need elue-hf."""
    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    auto_map = config.get("auto_map") or {}
    if "AutoConfig" not in auto_map:
        raise PushError("config.json has no auto_map: save the model with elue-hf's ElasticBERT classes")
    modules = sorted({ref.split(".")[0] + ".py" for ref in auto_map.values()})
    for name in modules:
        path = folder / name
        if not path.is_file():
            raise PushError(f"auto_map points at {name}, which save_pretrained did not write")
        if _PACKAGE_IMPORT.search(path.read_text(encoding="utf-8")):
            raise PushError(f"{name} imports elue_hf; Hub users without elue-hf could not load it")
    return modules


def _results(score, eval_results: Sequence | None) -> list:
    if eval_results is not None:
        return list(eval_results)
    return eval_results_from_score(score) if score is not None else []


def push_elasticbert(model, repo_id: str, *, tokenizer=None, score=None, eval_results: Sequence | None = None,
                     variant: str | None = None, summary: str | None = None, private: bool = False,
                     token: str | None = None, api=None, commit_message: str | None = None,
                     license: str = "apache-2.0"):
    """Push an ElasticBERT model with its code and ``auto_map`` (loadable with ``trust_remote_code=True`` by people
    without elue-hf, and natively with it), its tokenizer (default: the one saved with the model), and a card with
    the ELUE results of ``score`` (an ELUE core ``SubmissionScore``) or ``eval_results``."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) != "elasticbert":
        raise ValueError(f"push_elasticbert needs an ElasticBERT model, got {type(model).__name__} "
                         f"(model_type {getattr(config, 'model_type', None)!r})")
    with tempfile.TemporaryDirectory(prefix="elue-hf-push-") as tmp:
        model.save_pretrained(tmp)
        check_remote_code(tmp)
        save_tokenizer(load_tokenizer(tokenizer, getattr(model, "name_or_path", None) or None), tmp)
        card = elasticbert_card(variant, config=config, repo_id=repo_id, eval_results=_results(score, eval_results),
                                summary=summary, remote_code=True, license=license)
        card.save(str(Path(tmp) / "README.md"))
        return commit_folder(tmp, repo_id, "model", commit_message or f"Upload {type(model).__name__} with elue-hf",
                             private, token, api)


def push_lpt_adapter(peft_model, repo_id: str, *, tokenizer=None, score=None, eval_results: Sequence | None = None,
                     num_labels: int | None = None, summary: str | None = None, private: bool = False,
                     token: str | None = None, api=None, commit_message: str | None = None,
                     license: str = "apache-2.0"):
    """Push an LPT adapter (``adapter_config.json`` + weights and the tokenizer; the backbone stays where it is) with
    a card. ``tokenizer`` defaults to the one of the adapter's base model."""
    configs = getattr(peft_model, "peft_config", None)
    adapter = getattr(peft_model, "active_adapter", "default")
    peft_config = configs.get(adapter) if isinstance(configs, dict) else None
    peft_type = getattr(peft_config, "peft_type", None)
    if peft_config is None or str(getattr(peft_type, "value", peft_type)) != "LPT":
        raise ValueError(f"push_lpt_adapter needs a PEFT model with an active LPT adapter, got peft_type "
                         f"{peft_type!r}")
    trainable, _ = peft_model.get_nb_trainable_parameters()
    labels = num_labels or getattr(getattr(peft_model, "config", None), "num_labels", 2)
    with tempfile.TemporaryDirectory(prefix="elue-hf-push-") as tmp:
        from ..lpt.saving import save_lpt_adapter

        save_lpt_adapter(peft_model, tmp, tokenizer)
        if not (Path(tmp) / "adapter_config.json").is_file():
            raise PushError("save_pretrained wrote no adapter_config.json")
        card = lpt_adapter_card(repo_id, peft_config, eval_results=_results(score, eval_results), num_labels=labels,
                                trainable_params=int(trainable), summary=summary, license=license)
        card.save(str(Path(tmp) / "README.md"))
        return commit_folder(tmp, repo_id, "model", commit_message or "Upload LPT adapter with elue-hf", private,
                             token, api)


_WHEEL_REQUIREMENT = re.compile(r"^\./(wheels/[A-Za-z0-9_.\-]+\.whl)(\[[a-z,]+\])?\s*$", re.MULTILINE)


def space_wheels(folder) -> list[str]:
    """The local wheels a Space's ``requirements.txt`` installs (``./wheels/<file>.whl[extras]`` lines)."""
    requirements = Path(folder) / "requirements.txt"
    if not requirements.is_file():
        return []
    return [m.group(1) for m in _WHEEL_REQUIREMENT.finditer(requirements.read_text(encoding="utf-8"))]


def push_space(folder, repo_id: str, *, private: bool = False, token: str | None = None, api=None,
               commit_message: str | None = None, wheel_dir=None):
    """Push a Space folder (e.g. ``spaces/leaderboard`` or ``spaces/elue-metric``) as a gradio Space.

    elue-hf is not on PyPI, so the Spaces install it from a wheel uploaded with them: every ``./wheels/<file>.whl``
    line of ``requirements.txt`` must name a file in ``wheel_dir`` (default ``dist/``; build it with
    ``make space-wheel``), and that file goes into the same commit.
    """
    from huggingface_hub import SpaceCard

    folder = Path(folder)
    readme = folder / "README.md"
    if not readme.is_file() or not (folder / "app.py").is_file():
        raise PushError(f"{folder} is not a Space folder (needs README.md with a Space header and app.py)")
    data = SpaceCard.load(readme).data
    if getattr(data, "sdk", None) != "gradio" or not getattr(data, "sdk_version", None):
        raise PushError(f"{readme} must declare sdk: gradio and its sdk_version in the YAML header")
    wheel_dir = Path(wheel_dir if wheel_dir is not None else "dist")
    extra = {}
    for name in space_wheels(folder):
        local = wheel_dir / Path(name).name
        if not local.is_file():
            raise PushError(f"{folder / 'requirements.txt'} installs {name}, but {local} does not exist: build it "
                            "with `make space-wheel` (or pass the folder holding it)")
        extra[name] = local
    return commit_folder(folder, repo_id, "space", commit_message or f"Upload {folder.name} Space with elue-hf",
                         private, token, api, space_sdk="gradio", extra_files=extra)
