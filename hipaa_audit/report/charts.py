"""Charts for the reports, drawn with matplotlib as inline SVG (vector, text as paths)."""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Mapping, Sequence
from typing import Any

#: Colours of the five NIST levels, shared by the charts and the heat map.
LEVEL_COLOURS = {"Very Low": "#6aa84f", "Low": "#b6d7a8", "Moderate": "#ffd966",
                 "High": "#f6b26b", "Very High": "#e06666"}


#: matplotlib's SVG metadata keys; None leaves the RDF metadata block out (not valid in HTML)
_NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def _svg(fig: Any) -> str:
    """The figure as inline SVG whose ids are unique within the page (several charts share one)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata=_NO_METADATA)
    text = buf.getvalue()
    svg = text[text.index("<svg"):]
    prefix = "c" + hashlib.sha256(svg.encode()).hexdigest()[:8] + "-"
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r'href="#([^"]+)"', lambda m: f'href="#{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    return re.sub(r"<path(?![^>]*\sd=)[^>]*/>", "", svg)  # matplotlib's empty paths


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


SEVERITY_COLOURS = {"critical": "#cc0000", "high": "#e06666", "medium": "#f6b26b",
                    "low": "#b6d7a8", "info": "#cccccc"}


def path_steps(path: str) -> tuple[list[str], list[str]]:
    """Split a finding's path text (``a -member-of-> b -s3:acl [read]-> r``) into its parts.

    Returns the nodes and the edge labels between them.
    """
    import re

    parts = re.split(r" -(.+?)-> ", path)
    return parts[0::2], parts[1::2]


def access_paths(rows: Sequence[Mapping[str, Any]]) -> str:
    """Return a picture of the riskiest access paths, one row per path.

    The principal is on the left, the groups and roles it passes through in the middle, the
    resource on the right; each line is coloured by the finding's severity.
    """
    from matplotlib import pyplot as plt

    fig, ax = _figure(6.8, 0.42 * max(len(rows), 2) + 0.3)
    ax.set_axis_off()
    width = max((len(path_steps(str(r["path"]))[0]) if r.get("path") else 2) for r in rows)
    for i, row in enumerate(rows):
        nodes, edges = path_steps(str(row["path"])) if row.get("path") else (
            [str(row["principal"]), str(row["resource"])], [""])
        y = -i
        colour = SEVERITY_COLOURS.get(str(row.get("severity")), "#cccccc")
        xs = [j * (width - 1) / max(len(nodes) - 1, 1) for j in range(len(nodes))]
        ax.plot(xs, [y] * len(xs), color=colour, linewidth=2.2, zorder=1)
        for x, node in zip(xs, nodes, strict=True):
            label = node if len(node) <= 30 else "…" + node[-29:]
            ax.text(x, y, label, ha="center", va="center", fontsize=6.5, zorder=2,
                    bbox={"boxstyle": "round,pad=0.25", "facecolor": "white",
                          "edgecolor": colour, "linewidth": 0.8})
        for j, edge in enumerate(edges):
            if edge and j + 1 < len(xs):
                short = edge.split(" [", 1)[0]
                ax.text((xs[j] + xs[j + 1]) / 2, y + 0.26, short[-34:], ha="center",
                        va="bottom", fontsize=5.5, color="#555555")
    ax.set_xlim(-0.75, max(width - 1, 1) + 0.75)
    ax.set_ylim(-len(rows) + 0.5, 0.7)
    svg = _svg(fig)
    plt.close(fig)
    return svg
