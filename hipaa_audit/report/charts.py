"""Charts for the reports, drawn with matplotlib as inline SVG (vector, text as paths)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

#: Colours of the five NIST levels, shared by the charts and the heat map.
LEVEL_COLOURS = {"Very Low": "#6aa84f", "Low": "#b6d7a8", "Moderate": "#ffd966",
                 "High": "#f6b26b", "Very High": "#e06666"}


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams.update({"svg.fonttype": "path", "font.family": "DejaVu Sans",
                                "font.size": 8, "svg.hashsalt": "hipaa-audit"})
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height))
    ax.spines[["top", "right"]].set_visible(False)
    return fig, ax


def trend_chart(trend: Sequence[Mapping[str, Any]], levels: Sequence[str]) -> str:
    """Return a stacked bar chart of risks per level over the runs in ``trend``."""
    from matplotlib import pyplot as plt

    fig, ax = _figure(6.5, 2.3)
    labels = [f"{t['date']}\n{t['id'][-8:]}" for t in trend]
    bottom = [0] * len(trend)
    for level in levels:
        values = [int(t["risk"].get(level, 0)) for t in trend]
        ax.bar(labels, values, bottom=bottom, color=LEVEL_COLOURS[level], label=level,
               edgecolor="#555555", linewidth=0.4)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel("risks in the register")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, reverse=True)
    ax.yaxis.get_major_locator().set_params(integer=True)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def domain_chart(domains: Sequence[Mapping[str, Any]]) -> str:
    """Return a horizontal bar chart of flagged and unverifiable assets per domain."""
    from matplotlib import pyplot as plt

    fig, ax = _figure(6.5, 0.35 * max(len(domains), 2) + 0.6)
    names = [d["name"] for d in domains][::-1]
    failed = [d["failed"] for d in domains][::-1]
    errors = [d["errors"] for d in domains][::-1]
    ax.barh(names, failed, color="#e06666", label="assets flagged")
    ax.barh(names, errors, left=failed, color="#cccccc", label="assets not verifiable")
    ax.set_xlabel("assets")
    ax.legend(loc="lower right", frameon=False)
    svg = _svg(fig)
    plt.close(fig)
    return svg


def anomaly_timeline(timeline: Sequence[Mapping[str, Any]]) -> str:
    """Return a timeline of the audit-log anomalies: one row per kind, a mark per anomaly."""
    import datetime as dt

    from matplotlib import pyplot as plt

    kinds = sorted({str(t["kind"]) for t in timeline})
    fig, ax = _figure(6.5, 0.3 * max(len(kinds), 2) + 0.8)
    for row, kind in enumerate(kinds):
        for t in (x for x in timeline if x["kind"] == kind):
            start = dt.datetime.fromisoformat(str(t["start"]).replace("Z", "+00:00"))
            end = dt.datetime.fromisoformat(str(t["end"]).replace("Z", "+00:00"))
            width = max((end - start).total_seconds() / 86400, 0.3)
            ax.barh(row, width, left=start, height=0.5,
                    color="#e06666" if t.get("high") else "#f6b26b", edgecolor="#555555",
                    linewidth=0.3)
    ax.set_yticks(range(len(kinds)), kinds)
    ax.invert_yaxis()
    fig.autofmt_xdate()
    svg = _svg(fig)
    plt.close(fig)
    return svg
