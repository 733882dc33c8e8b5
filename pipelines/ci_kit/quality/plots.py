"""The report's pictures, drawn with matplotlib (the `quality` extra) on its Agg
backend and returned as PNG data URIs, so the HTML page needs no network and no files
beside it."""

from __future__ import annotations

import base64
import io
from itertools import pairwise
from typing import Any

from ci_kit.errors import UsageError

COLOURS = {"stable": "#2e7d32", "testing": "#1565c0", "refused": "#c62828", "not promoted": "#9e9e9e"}
MARKERS = {"stable": "o", "testing": "s", "refused": "X", "not promoted": "."}


def available() -> bool:
    """Whether the plots can be drawn (matplotlib, extra `quality`). Without it the report
    is still written, with its tables and a note in place of each plot: a report step
    after a promotion must not fail a job for want of an optional extra."""
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UsageError("ci-kit report draws with matplotlib, which is not installed",
                         "pip install 'ci-kit[quality]' (scipy and matplotlib)") from None
    return plt


def _uri(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96)  # the figures use the constrained layout: one draw, not two
    _pyplot().close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def metrics_over_versions(versions: list[Any], names: list[str]) -> str:
    """One panel per metric: its value per version, marked by where the version went."""
    plt = _pyplot()
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.6 * len(names)), squeeze=False, layout="constrained")
    for ax, name in zip(axes[:, 0], names, strict=False):
        have = [(i, v) for i, v in enumerate(versions) if name in v.metrics]
        ax.plot([i for i, _ in have], [v.metrics[name] for _, v in have], color="#bbbbbb", zorder=1)
        for state, colour in COLOURS.items():
            pts = [(i, v.metrics[name]) for i, v in have if v.state == state]
            if pts:
                ax.scatter(*zip(*pts, strict=True), color=colour, marker=MARKERS[state], s=60, label=state, zorder=2)
        ax.set_ylabel(name)
        step = max(1, len(versions) // 25)  # at most ~25 labels stay readable (and drawing fewer ticks is faster)
        ticks = sorted(set(range(0, len(versions), step)) | {len(versions) - 1})
        ax.set_xticks(ticks)
        ax.set_xticklabels([versions[k].version for k in ticks], rotation=45 if len(ticks) > 8 else 0,
                           ha="right" if len(ticks) > 8 else "center", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize=8)
    fig.suptitle("metrics over versions")
    return _uri(fig)


def _draw(ax: Any, resp: dict[str, Any], label: str, colour: str) -> None:
    if "scores" in resp:
        bins = 20 if resp["kind"] != "probability" else [i / 20 for i in range(21)]
        ax.hist(resp["scores"], bins=bins, alpha=0.45, label=label, color=colour, density=True)
    else:
        h = resp["histogram"]
        total = sum(h["counts"])
        widths = [b - a for a, b in pairwise(h["edges"])]
        ax.stairs([c / total / w for c, w in zip(h["counts"], widths, strict=False)], h["edges"], fill=True, alpha=0.45,
                  label=label, color=colour)


def responses(version: str, resp: dict[str, Any], base_version: str, base: dict[str, Any] | None,
              band: tuple[float, float]) -> str:
    """The version's response histogram overlaid on its baseline's."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3.2), layout="constrained")
    if base is not None:
        _draw(ax, base, f"baseline {base_version}", "#2e7d32")
    _draw(ax, resp, version, "#c62828" if base is not None else "#1565c0")
    if resp["kind"] == "probability":
        ax.axvspan(*band, color="#ffb300", alpha=0.12, label="undecided band")
    ax.set_xlabel("score")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.set_title(f"responses of {version}" + (f" vs baseline {base_version}" if base is not None else " (no baseline)"))
    return _uri(fig)
