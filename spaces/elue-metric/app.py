"""ELUE metric Space: a small form around the `evaluate` metric (logic in `elue_hf.spaces.metric.app`)."""

from elue_hf.spaces.metric.app import build_metric_app

demo = build_metric_app()

if __name__ == "__main__":
    demo.launch()
