"""An ONNX bundle inside ``transformers.pipeline``: exit layer and MFLOPs per text, as with the PyTorch model.

>>> from transformers import pipeline
>>> from elue_hf.deploy import OnnxElasticBertForSequenceClassification
>>> from elue_hf.deploy.pipeline import OnnxTextClassificationPipeline
>>> model = OnnxElasticBertForSequenceClassification.from_pretrained("bundle/")
>>> clf = pipeline("elasticbert-text-classification", model=model, pipeline_class=OnnxTextClassificationPipeline)
>>> clf("a gripping film", exit_criterion="entropy", entropy_threshold=0.3)
[{'label': 'positive', 'score': 0.93, 'exit_layer': 2, 'mflops': 1234.5}]

(or ``OnnxTextClassificationPipeline(model=model)``, the way transformers' pipeline classes are built directly).

transformers' pipelines drive a torch model: they read ``model.config`` (a transformers config), ``model.device``,
call ``model.to(device)`` and ``model(**torch_tensors)``. :class:`OnnxPipelineModel` gives a bundle's runtime that
face (the bundle's ``config.json`` is the model's transformers config), and
:class:`OnnxTextClassificationPipeline` is the package's ``elasticbert-text-classification`` pipeline (tokenization,
exit options per call, ``exit_layer`` and ``mflops`` per result, label mapping) taking a bundle's runtime and its
tokenizer (the bundle's own files) as they are. This module imports torch and transformers; a serving machine
without them uses :meth:`OnnxElasticBertForSequenceClassification.predict`, which returns the same fields.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..elasticbert.pipeline import ElasticBertTextClassificationPipeline
from .runtime import OnnxElasticBertForSequenceClassification

__all__ = ["OnnxPipelineModel", "OnnxTextClassificationPipeline"]


@dataclass
class _Output:
    logits: torch.Tensor
    exit_layer: torch.Tensor


class OnnxPipelineModel:
    """A bundle's ONNX Runtime model seen by ``transformers.pipeline`` as a (CPU, inference-only) torch model."""

    device = torch.device("cpu")
    dtype = torch.float32

    def __init__(self, runtime: OnnxElasticBertForSequenceClassification):
        from transformers import AutoConfig

        self.runtime = runtime
        self.config = AutoConfig.from_pretrained(runtime.directory, trust_remote_code=False)
        self.name_or_path = self.config.name_or_path = str(runtime.directory)

    @classmethod
    def from_pretrained(cls, directory, **runtime_kwargs) -> OnnxPipelineModel:
        """``OnnxPipelineModel(OnnxElasticBertForSequenceClassification.from_pretrained(directory, ...))``."""
        return cls(OnnxElasticBertForSequenceClassification.from_pretrained(directory, **runtime_kwargs))

    def to(self, device=None, *args, **kwargs) -> OnnxPipelineModel:
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"an ONNX bundle runs on ONNX Runtime's providers, not on torch device {device!r}; "
                             "create the pipeline with device='cpu' and pass providers= to from_pretrained")
        return self

    def eval(self) -> OnnxPipelineModel:
        """``torch.nn.Module.eval``'s counterpart, which transformers' pipeline calls on its model: a bundle is
        always in inference mode, so nothing changes (no code is evaluated)."""
        return self

    def can_generate(self) -> bool:
        return False

    def __call__(self, input_ids, attention_mask=None, token_type_ids=None, **exit_options) -> _Output:
        arrays = [None if t is None else t.detach().cpu().numpy() for t in (input_ids, attention_mask, token_type_ids)]
        out = self.runtime.forward(*arrays, **exit_options)
        return _Output(logits=torch.from_numpy(out.logits), exit_layer=torch.from_numpy(out.exit_layer))

    forward = __call__


class OnnxTextClassificationPipeline(ElasticBertTextClassificationPipeline):
    """The ``elasticbert-text-classification`` pipeline on a bundle: ``model`` is an
    :class:`OnnxElasticBertForSequenceClassification` (or an :class:`OnnxPipelineModel`); the tokenizer defaults to
    the bundle's own. Exit options, ``exit_layer`` and ``mflops`` as with the PyTorch model."""

    _load_tokenizer = False  # transformers.pipeline() cannot find a tokenizer for a model object: the bundle has one

    def __init__(self, model=None, tokenizer=None, **kwargs):
        if isinstance(model, OnnxElasticBertForSequenceClassification):
            model = OnnxPipelineModel(model)
        if not isinstance(model, OnnxPipelineModel):
            raise ValueError(f"OnnxTextClassificationPipeline runs an ONNX bundle (OnnxElasticBertForSequence"
                             f"Classification.from_pretrained(folder)), got {type(model).__name__}; use "
                             "pipeline(\"elasticbert-text-classification\") for a PyTorch model")
        if tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model.runtime.directory)
        kwargs.setdefault("device", "cpu")  # transformers would pick cuda:0 where torch sees a GPU; ORT runs the model
        super().__init__(model=model, tokenizer=tokenizer, **kwargs)

    def check_model_type(self, supported_models):
        """A bundle is no class of transformers' mapping; its config's model type is checked in ``__init__``."""
