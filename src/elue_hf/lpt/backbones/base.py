"""The backbone-adapter interface: how LPT finds a family's layer list and rewrites its layer calls.

LPT wraps one module of the backbone (the *body*: an encoder or a decoder stack) in an :class:`~elue_hf.lpt.LPTLayer`.
For the families in this package the wrapper runs the body's **own** ``forward`` and installs call-scoped hooks on
layers ``k .. L-1`` (``k`` = ``prompt_layer``):

* before layer ``k``: the prompt is generated from that layer's input (the output of layer ``k - 1``) and prepended to
  the sequence (``(b, n, d) -> (b, l + n, d)``);
* before every layer ``>= k``: the family adapter rewrites the call's mask and position arguments for the longer
  sequence (:meth:`HookedBackbone.rewrite_layer_call`);
* after the last layer: the prompt rows are stripped, so the final norm, the heads and the LM loss see ``n`` rows.

The hooks exist only while one forward runs; the backbone's parameters, state dict and code stay untouched, which keeps
``unload()`` exact and lets the family's own mask, rotary and cache code do the rest.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import torch
from torch import nn

__all__ = ["HookedBackbone", "LatePromptCall", "bind_call", "call_argument", "repeat_at_source", "set_call_argument"]


@dataclass
class LatePromptCall:
    """State of one forward pass through an LPT-wrapped body (shared by the hooks of layers ``k .. L-1``).

    Attributes:
        module: the wrapped body (e.g. ``LlamaModel``, ``DebertaV2Encoder``).
        k: layers run before the prompt goes in; ``num_tokens``: prompt length ``l``.
        make_prompt: ``(hidden (b, n, d)) -> prompt (b, l, d)``, called once, before layer ``k``.
        source: (b,) index of the token each row's prompt is generated from (decoders read its positions), or None.
        cached: the prompt's keys and values are already in the KV cache (a decoding step): no prompt rows this call.
        inserted: set once the prompt rows are in the sequence (then stripped after the last layer).
        extra: what the family adapter's :meth:`HookedBackbone.begin` noted for its layer calls.
    """

    module: nn.Module
    k: int
    num_tokens: int
    make_prompt: Callable[[torch.Tensor], torch.Tensor]
    source: torch.Tensor | None = None
    cached: bool = False
    inserted: bool = False
    extra: dict = field(default_factory=dict)


@cache
def _signature(function) -> inspect.Signature:
    return inspect.signature(function)


def _var_keyword(bound: inspect.BoundArguments) -> str | None:
    for name, parameter in bound.signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            return name
    return None


def call_argument(bound: inspect.BoundArguments, name: str, default: Any = None) -> Any:
    """The value of argument ``name`` of a bound call, whether named in the signature or passed through ``**kwargs``."""
    if name in bound.arguments and name != _var_keyword(bound):
        return bound.arguments[name]
    extra = bound.arguments.get(_var_keyword(bound) or "", {})
    return extra.get(name, default)


def set_call_argument(bound: inspect.BoundArguments, name: str, value: Any) -> None:
    """Set argument ``name`` of a bound call (only if the call has it, named or in ``**kwargs``)."""
    var_kw = _var_keyword(bound)
    if name in bound.signature.parameters and name != var_kw:
        if name in bound.arguments or value is not None:
            bound.arguments[name] = value
        return
    extra = bound.arguments.get(var_kw or "", None)
    if extra is not None and name in extra:
        extra[name] = value


def bind_call(module: nn.Module, args: tuple, kwargs: dict) -> inspect.BoundArguments:
    """Bind ``module.forward``'s arguments by name (the signature is cached per class)."""
    return _signature(type(module).forward).bind(module, *args, **kwargs)


def _unbind(bound: inspect.BoundArguments) -> tuple[tuple, dict]:
    args = bound.args[1:]  # drop ``self``
    return args, bound.kwargs


def repeat_at_source(x: torch.Tensor, source: torch.Tensor, num_tokens: int) -> torch.Tensor:
    """Prepend ``num_tokens`` copies of each row's entry at ``source`` along dim 1.

    ``x`` is (B, n, ...) with B = 1 (shared by the batch) or b; returns (b, l + n, ...). Used for per-token position
    tensors (rotary ``cos``/``sin``, ``position_ids``): the prompt takes the position of its source token.
    """
    b = source.shape[0]
    x = x.expand(b, *x.shape[1:])
    rows = torch.arange(b, device=x.device)
    picked = x[rows, source.to(x.device)]
    return torch.cat([picked[:, None].expand(b, num_tokens, *picked.shape[1:]), x], dim=1)


class HookedBackbone:
    """Base class of the per-family adapters. Subclasses say where the layers are and how a layer call changes.

    Class attributes:
        model_types: ``config.model_type`` values served; ``target_module``: the module LPT wraps (relative name);
        layer_attr: the attribute holding the layer ``ModuleList``. What the generator reads (encoders: [CLS],
        decoders: the last context token) is decided in :meth:`begin`.
    """

    model_types: tuple[str, ...] = ()
    target_module: str = ""
    layer_attr: str = ""

    # -- description -----------------------------------------------------------------------------------------------

    def matches(self, module: nn.Module) -> bool:
        """Whether ``module`` is the body this adapter drives."""
        return isinstance(getattr(module, self.layer_attr, None), nn.ModuleList) and self._matches(module)

    def _matches(self, module: nn.Module) -> bool:
        config = getattr(module, "config", None)
        return getattr(config, "model_type", None) in self.model_types

    def layers(self, module: nn.Module) -> nn.ModuleList:
        return getattr(module, self.layer_attr)

    def check(self, module: nn.Module, prompt_layer: int) -> None:
        """Raise ``ValueError`` for settings this family cannot run with a late prompt (default: none)."""

    # -- one forward -------------------------------------------------------------------------------------------------

    def begin(self, module: nn.Module, bound: inspect.BoundArguments, k: int, num_tokens: int):
        """``(keep (b, n) bool, source (b,) or None, cached, extra)`` for this call of the body.

        ``keep`` marks the tokens the generator may read (pooling generators pool them); ``source``, ``cached`` and
        ``extra`` go to the :class:`LatePromptCall` of this forward.
        """
        raise NotImplementedError

    def rewrite_layer_call(self, call: LatePromptCall, bound: inspect.BoundArguments, index: int) -> None:
        """Adapt the mask / position arguments of the call of layer ``index >= k`` to the sequence with the prompt."""
        raise NotImplementedError

    def run(self, call: LatePromptCall, args: tuple, kwargs: dict):
        """The body's own forward with the late-prompt hooks installed for the duration of the call."""
        layers = self.layers(call.module)
        handles = [
            layers[i].register_forward_pre_hook(partial(self._before_layer, call, i), with_kwargs=True)
            for i in range(call.k, len(layers))
        ]
        handles.append(layers[len(layers) - 1].register_forward_hook(partial(_strip_prompt_rows, call)))
        try:
            return call.module(*args, **kwargs)
        finally:
            for handle in handles:
                handle.remove()

    def _before_layer(self, call: LatePromptCall, index: int, layer: nn.Module, args: tuple, kwargs: dict):
        bound = bind_call(layer, args, kwargs)
        if index == call.k and not call.cached:
            hidden_name = list(bound.signature.parameters)[1]  # the first argument after ``self``
            hidden = bound.arguments[hidden_name]
            bound.arguments[hidden_name] = torch.cat([call.make_prompt(hidden), hidden], dim=1)
            call.inserted = True
        self.rewrite_layer_call(call, bound, index)
        return _unbind(bound)


def _strip_prompt_rows(call: LatePromptCall, layer: nn.Module, args: tuple, output):
    """Forward hook of the last layer: drop the ``l`` leading prompt rows from its hidden-state output."""
    if not call.inserted:
        return None
    num = call.num_tokens
    if isinstance(output, tuple):
        return (output[0][:, num:],) + tuple(output[1:])
    return output[:, num:]
