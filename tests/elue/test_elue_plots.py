"""The Pareto plot: labels never overprint, the front is visible (also for one point), titles name the data."""

import numpy as np
import pytest

from elue_hf.elue.plots import merged_labels, pareto_figure, pareto_front, pareto_plot


def _sweep(n=9):
    """A dense threshold sweep: points a few MFLOPs and tenths of a point apart."""
    return [{"method": "tiny", "label": f"entropy {0.05 * (i + 1):.2f}", "mflops": 1000 + 12 * i - 5 * (i % 2),
             "performance": 85 + 0.15 * i} for i in range(n)]


def _label_boxes(fig):
    from matplotlib.text import Text

    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    return ax, [Text.get_window_extent(t, renderer) for t in ax.texts]


def test_sweep_labels_do_not_overlap_each_other_or_the_markers():
    import matplotlib.pyplot as plt

    points = _sweep() + [{"method": "tiny static", "label": f"static k={k}", "mflops": 990 + 40 * k,
                          "performance": 84.5 + k} for k in (1, 2, 3)]
    fig = pareto_figure(points, "sst-2")
    ax, boxes = _label_boxes(fig)
    assert sorted(t.get_text() for t in ax.texts) == sorted(p["label"] for p in points)
    for i, a in enumerate(boxes):
        assert all(not a.overlaps(b) for b in boxes[i + 1 :]), ax.texts[i].get_text()
    frame = ax.get_window_extent()
    assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)
    centres = ax.transData.transform([(p["mflops"], p["performance"]) for p in points])
    assert not any(b.contains(x, y) for b in boxes for x, y in centres)
    legend = ax.get_legend().get_window_extent()
    assert not any(b.overlaps(legend) for b in boxes)
    plt.close(fig)


def test_one_point_front_is_drawn_with_a_marker_and_titles_name_the_data(tmp_path):
    import matplotlib.pyplot as plt

    fig = pareto_figure([{"method": "m", "label": "static k=3", "mflops": 500.0, "performance": 70.0}], "snli",
                        data_label="my NLI data")
    ax = fig.axes[0]
    front = [line for line in ax.lines if line.get_label() == "Pareto front (ringed)"]
    assert len(front) == 1 and front[0].get_marker() == "o" and list(front[0].get_xdata()) == [500.0]
    assert ax.get_title() == "my NLI data: performance vs FLOPs"
    assert "my NLI data" in ax.get_ylabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(t.startswith("reference: ElasticBERT-base, ELUE SNLI test set") for t in legend)
    plt.close(fig)
    fig = pareto_figure(_sweep(2), "snli")
    assert fig.axes[0].get_title() == "ELUE SNLI test set: performance vs FLOPs"
    plt.close(fig)
    png = pareto_plot(_sweep(3), None, tmp_path / "p.png", xlabel="mean exit layer", title="demo")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing to plot"):
        pareto_plot([], "sst-2", tmp_path / "none.png")


def test_pareto_front_keeps_undominated_points_cheapest_first():
    assert pareto_front([3, 1, 2, 2], [90, 80, 85, 70]).tolist() == [1, 2, 0]
    assert pareto_front([5.0], [1.0]).tolist() == [0]
    assert np.array_equal(pareto_front([1, 1], [2, 2]), [0])


def test_coinciding_points_share_one_label():
    xs, ys, texts = merged_labels([5, 5, 5, 7, 7], [1, 1, 1, 2, 2],
                                  ["entropy 0.10", "entropy 0.20", "entropy 0.30", "static k=6", "patience 2"])
    assert (xs, ys, texts) == ([5, 7], [1, 2], ["entropy 0.10, 0.20, 0.30", "static k=6; patience 2"])
    assert merged_labels([1, 2], [1, 1], ["a", ""]) == ([1], [1], ["a"])
    near = merged_labels([195.6, 195.9, 300], [62.3, 62.3, 62.3], ["static k=2", "patience 1", "static k=3"], (1, 0.1))
    assert near == ([195.6, 300], [62.3, 62.3], ["static k=2; patience 1", "static k=3"])


def _walkthrough_points():
    """A converted MiniLM's sweep (docs/walkthrough.md): static k = 1..6, entropy and patience points, some of them
    on the same spot as a static point."""
    static = [(53.5, 96), (57.2, 192), (72.5, 289), (77.8, 385), (79.2, 481), (78.7, 578)]
    points = [{"method": "eb (static)", "label": f"static k={k}", "mflops": x, "performance": y}
              for k, (y, x) in enumerate(static, 1)]
    points += [{"method": "eb (entropy)", "label": f"entropy {t}", "mflops": x, "performance": y}
               for t, (y, x) in {"0.20": (78.7, 578), "0.40": (78.6, 560), "0.60": (78.7, 421.7)}.items()]
    return points + [{"method": "eb (patience)", "label": f"patience {t}", "mflops": x, "performance": y}
                     for t, (y, x) in {"1": (72.0, 330), "2": (77.5, 430)}.items()]


def test_every_legend_entry_is_visible_and_labels_stay_near_their_points():
    import matplotlib.pyplot as plt

    points = _walkthrough_points()
    fig = pareto_figure(points, "sst-2", data_label="RT snippets")
    ax = fig.axes[0]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    assert x1 < 1000  # framed on the points, not stretched to the reference's 12-layer point (4238 MFLOPs)
    by_label = {line.get_label(): line for line in ax.lines}
    methods = [by_label[m] for m in ("eb (static)", "eb (entropy)", "eb (patience)")]
    assert len({line.get_marker() for line in methods}) == 3  # told apart by shape, not colour alone
    sizes = [line.get_markersize() for line in methods]
    assert sizes == sorted(sizes, reverse=True)  # static k=6 stays visible around entropy 0.20 on the same spot
    for line in methods:
        assert any(x0 <= x <= x1 and y0 <= y <= y1 for x, y in zip(line.get_xdata(), line.get_ydata()))
    reference = next(line for line in ax.lines if line.get_label().startswith("reference:"))
    assert reference.get_marker() in ("None", "", None) and reference.get_linestyle() == "-"  # a line in the legend
    in_view = [(x, y) for line in ax.lines if line.get_gid() == "reference"
               for x, y in zip(line.get_xdata(), line.get_ydata()) if x0 <= x <= x1 and y0 <= y <= y1]
    assert in_view  # ... and the curve passes through the frame
    for text in ax.texts:
        assert np.hypot(*text.xyann) <= 35, text.get_text()  # at most 35 pt from its point
    plt.close(fig)
