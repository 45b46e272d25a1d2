"""Published FLOPs of ELUE baselines vs this package's counters (the table in docs/benchmarks.md).

Every model is built from its public checkpoint's config (random weights: FLOPs need shapes only); its per-instance
cost a + b n + c n^2 is counted exactly at n = 1, 2, 3 (hooked route on the meta device; MobileBERT, which has no
family rule, through the generic FlopCounterMode route on CPU) and evaluated at each ELUE test set's E[n], E[n^2]
(see :mod:`elue_hf.elue.score.baselines` for the length profile and its IMDb calibration).

Run: ``.venv/bin/python benchmarks/bench_flops_baselines.py`` (about 30 s on 2 CPU cores); prints a Markdown table.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _fmt(value, digits):
    if isinstance(value, tuple):
        return " / ".join(f"{v:.{digits}f}" for v in value)
    return f"{value:,.{digits}f}"


def main() -> None:
    from elue_hf.elue.score.baselines import AVERAGE_TOLERANCE, SPEEDUP_TOLERANCE, baseline_rows, length_profile

    profile = length_profile()
    print("E[n] / E[n^2] per test set: " + ", ".join(
        f"{t} {profile.mean[t]:.2f} / {profile.mean_square[t]:.0f}" for t in profile.mean))
    print()
    print("| model | shape | figure | paper | ours | ratio or max abs. diff. | reproduced | note |")
    print("|---|---|---|---|---|---|---|---|")
    for row in baseline_rows(profile):
        speedup = isinstance(row["paper"], tuple)
        digits = (1, 2) if speedup else (0, 1)
        tol = f"within ±{SPEEDUP_TOLERANCE}" if speedup else f"within ±{AVERAGE_TOLERANCE:.1%}"
        ratio = f"{row['ratio']:.3f}" if speedup else f"{row['ratio']:.4f}"
        status = f"yes ({tol})" if row["reproduced"] else ("calibration" if row["model"] == "BERT-base" else "no")
        print(f"| {row['model']} | {row['shape']} | {row['quantity']} | {_fmt(row['paper'], digits[0])} | "
              f"{_fmt(row['ours'], digits[1])} | {ratio} | {status} | {row['note']} |")


if __name__ == "__main__":
    main()
