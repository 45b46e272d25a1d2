"""The ELUE metric Space (``spaces/elue-metric/app.py``): score one task's predictions with their FLOPs.

``evaluate.launch_gradio_widget`` is broken with gradio >= 4 (``gr.inputs`` is gone), so the widget is built here with
plain ``gr.Blocks``; the numbers come from the shipped ``evaluate`` metric itself (``elue_hf.metrics.Elue``).
"""

from __future__ import annotations

import re

from ...elue.tasks import TASK_KEYS, TASKS, get_task

__all__ = ["parse_numbers", "compute_from_text", "build_metric_app"]

_MAX_VALUES = 200_000


def parse_numbers(text: str, what: str) -> list[float]:
    """Numbers separated by commas, spaces or newlines; a clear ``ValueError`` for anything else."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{what}: enter numbers separated by commas or spaces")
    parts = [p for p in re.split(r"[\s,;]+", text.strip()) if p]
    if len(parts) > _MAX_VALUES:
        raise ValueError(f"{what}: at most {_MAX_VALUES} values")
    values = []
    for i, part in enumerate(parts, start=1):
        try:
            values.append(float(part))
        except ValueError:
            raise ValueError(f"{what}: value {i} ({part[:20]!r}) is not a number") from None
    return values


def compute_from_text(task: str, predictions: str, references: str, flops: str = "",
                      mean_flops: float | None = None) -> dict:
    """What the Space computes: the ELUE metric of one task (FLOPs per instance, or one mean for all)."""
    from ...metrics import Elue

    task = get_task(task)
    preds = parse_numbers(predictions, "predictions")
    refs = parse_numbers(references, "references")
    if len(preds) != len(refs):
        raise ValueError(f"{len(preds)} predictions but {len(refs)} references")
    kwargs = {"task": task.key}
    if flops and flops.strip():
        kwargs["flops"] = parse_numbers(flops, "flops")
        if len(kwargs["flops"]) != len(preds):
            raise ValueError(f"{len(kwargs['flops'])} FLOPs values for {len(preds)} predictions")
    elif mean_flops:
        kwargs["mean_flops"] = float(mean_flops)
    else:
        raise ValueError("give MFLOPs per instance, or one mean MFLOPs value")
    if not task.is_regression:
        preds, refs = [int(p) for p in preds], [int(r) for r in refs]
    return Elue().compute(predictions=preds, references=refs, **kwargs)


def build_metric_app():
    import gradio as gr

    def run(task, predictions, references, flops, mean_flops):
        try:
            return compute_from_text(task, predictions, references, flops, mean_flops), ""
        except ValueError as err:
            return None, f"**Error:** {err}"

    with gr.Blocks(title="ELUE metric") as demo:
        gr.Markdown("# ELUE metric\nTask metric (x100), mean MFLOPs per instance and the residual against the "
                    "ElasticBERT-base reference curve. In Python: `evaluate.load(...)` with `elue-hf` installed.")
        task = gr.Dropdown([TASKS[t].name for t in TASK_KEYS], value="SST-2", label="Task")
        predictions = gr.Textbox(label="Predictions (label codes; floats for STS-B)", placeholder="0, 1, 1")
        references = gr.Textbox(label="References (gold labels)", placeholder="0, 1, 0")
        with gr.Row():
            flops = gr.Textbox(label="MFLOPs per instance (optional)", placeholder="1010.2, 1100.0, 980.5")
            mean_flops = gr.Number(label="or: mean MFLOPs per instance", value=None)
        button = gr.Button("Compute", variant="primary")
        result = gr.JSON(label="ELUE")
        error = gr.Markdown()
        button.click(run, [task, predictions, references, flops, mean_flops], [result, error], api_name="compute")
    return demo
