"""ELUE metric for `evaluate` (Space copy): the implementation ships with the `elue-hf` package.

`evaluate.load("<this Space>")` imports this file; it re-exports `elue_hf.metrics.Elue`, so the Hub module and the
package can never drift apart. Install `elue-hf` first (evaluate reports the missing dependency otherwise).
"""

from elue_hf.metrics import Elue  # noqa: F401  (evaluate finds the EvaluationModule subclass in this namespace)
