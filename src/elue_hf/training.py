"""The one optimisation loop of elue-hf: AdamW, linear warm-up then linear decay, gradient clipping.

Used by every place in the package that trains with a plain loop: the demo's multi-exit fine-tuning, the HashEE and
LPT demo sections and continued multi-exit pre-training (the latter through an ``accelerate.Accelerator``). Fine-tuning
for users goes through ``transformers.Trainer`` instead (``elue-hf train``), which scales with ``accelerate launch``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, Sequence

__all__ = ["OptimizerSettings", "param_groups", "train_steps"]


@dataclass(frozen=True)
class OptimizerSettings:
    """AdamW and its schedule. ``warmup`` is a fraction of ``steps`` (< 1) or a number of steps (>= 1)."""

    steps: int
    learning_rate: float
    weight_decay: float = 0.01
    warmup: float = 0.06
    max_grad_norm: float | None = 1.0
    eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.999)

    def __post_init__(self):
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a positive integer, got {self.steps!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup!r}")

    @property
    def warmup_steps(self) -> int:
        steps = self.warmup * self.steps if self.warmup < 1 else self.warmup
        return max(1, int(round(steps)))


def param_groups(model, learning_rate: float, head_lr_scale: float = 1.0,
                 is_head: Callable[[str], bool] | None = None) -> list[dict[str, Any]]:
    """The trainable parameters of ``model`` in two groups: the body at ``learning_rate`` and the parameters whose name
    ``is_head`` accepts at ``learning_rate * head_lr_scale`` (one group when ``is_head`` is None)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if is_head is None:
        return [{"params": [p for _, p in named], "lr": learning_rate}]
    heads = [p for n, p in named if is_head(n)]
    body = [p for n, p in named if not is_head(n)]
    return [g for g in ({"params": body, "lr": learning_rate},
                        {"params": heads, "lr": learning_rate * head_lr_scale}) if g["params"]]


def train_steps(
    model,
    batches: Iterable[dict[str, Any]],
    settings: OptimizerSettings,
    *,
    groups: Sequence[dict[str, Any]] | None = None,
    accelerator=None,
    progress: Callable[[Iterable], Iterable] | None = None,
    on_step: Callable[[int, float, dict], None] | None = None,
) -> list[float]:
    """Run ``settings.steps`` optimisation steps of ``model(**batch).loss`` and return the loss of each step.

    ``batches`` yields keyword arguments for the model (labels included), or for one step a list of such
    micro-batches (their losses weighted by their rows: the whole batch's gradient); a list or data loader is
    repeated as often as needed, a one-shot iterator must yield at least ``settings.steps`` batches. ``groups``
    defaults to every trainable parameter at ``settings.learning_rate`` (see :func:`param_groups`). With an
    ``accelerator`` the model, optimizer and schedule are prepared by it and it does the backward pass and clipping;
    pass batches from a data loader it prepared. The model is left in eval mode.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    groups = list(groups) if groups is not None else param_groups(model, settings.learning_rate)
    params = [p for g in groups for p in g["params"]]
    if not params:
        raise ValueError("nothing to train: the model has no trainable parameters")
    optimizer = torch.optim.AdamW(groups, lr=settings.learning_rate, weight_decay=settings.weight_decay,
                                  eps=settings.eps, betas=settings.betas, fused=_fused_ok(params))
    schedule = get_linear_schedule_with_warmup(optimizer, settings.warmup_steps, settings.steps)
    if accelerator is not None:
        model, optimizer, schedule = accelerator.prepare(model, optimizer, schedule)
    model.train()
    losses: list[float] = []
    stream = _cycle(batches)
    steps = range(settings.steps) if progress is None else progress(range(settings.steps))
    for step in steps:
        batch = next(stream)
        loss = _backward(model, batch, accelerator)
        if settings.max_grad_norm is not None:
            clip = accelerator.clip_grad_norm_ if accelerator is not None else torch.nn.utils.clip_grad_norm_
            clip(params, settings.max_grad_norm)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss)
        if on_step is not None:
            on_step(step, losses[-1], batch)
    model.eval()
    return losses


def _backward(model, batch, accelerator) -> float:
    """Forward and backward of one step; returns the step's loss. ``batch`` is one dict of model arguments, or a
    list of micro-batches (dicts) that together form the step's batch: each micro-batch's mean loss is weighted by
    its share of the rows (the leading size of its first tensor), so the gradient is the whole batch's mean loss's."""
    if isinstance(batch, (list, tuple)):
        rows = [_rows(m) for m in batch]
        parts = [(m, n / sum(rows)) for m, n in zip(batch, rows)]
    else:
        parts = [(batch, None)]
    total = 0.0
    for arguments, weight in parts:
        loss = model(**arguments).loss
        if weight is not None:
            loss = loss * weight
        if accelerator is not None:
            accelerator.backward(loss)
        else:
            loss.backward()
        total += float(loss.detach())
    return total


def _rows(arguments: dict[str, Any]) -> int:
    for value in arguments.values():
        if getattr(value, "ndim", 0):
            return int(value.shape[0])
    raise ValueError("a micro-batch needs at least one tensor argument (its rows weight its loss)")


def _fused_ok(params) -> bool:
    """Whether torch's fused AdamW kernel can update ``params``: floating-point tensors on CPU or CUDA. On CPU it is
    4-5x faster than the default per-parameter loop (0.03 vs 0.14 s for MiniLM's 22.7M parameters, one thread;
    ``benchmarks/profile_demo_step.py``); the update is the same AdamW."""
    return all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)


def _cycle(batches: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Repeat a re-iterable (a list, a DataLoader) as often as needed; a one-shot iterator must not run out."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            raise ValueError("train_steps ran out of batches (pass a list or a data loader, or an endless iterator)")
