"""`ci-kit report NAME`: one self-contained HTML page (styles inline, plots as data URIs,
no script, nothing fetched when it is viewed) and, with --summary, the comparison table
as Markdown for $GITHUB_STEP_SUMMARY or a Jenkins build description."""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ci_kit import console
from ci_kit.quality import plots
from ci_kit.quality.history import History, Version
from ci_kit.quality.rules import parse

if TYPE_CHECKING:
    from ci_kit.config import QualitySettings

MAX_METRICS = 6  # panels drawn; every metric is in the table
CSS = ("body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}"
       "td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}th{background:#f3f3f3}"
       ".stable{color:#2e7d32}.testing{color:#1565c0}.refused{color:#c62828;font-weight:bold}"
       ".not-promoted{color:#777}img{max-width:100%;border:1px solid #eee}small{color:#666}")


def _names(h: History) -> list[str]:
    names: list[str] = [h.headline] if h.headline else []
    for v in h.versions:
        names += [m for m in v.metrics if m not in names]
    return names


def _fmt(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, (int, float)) else "—"


def chosen(h: History, version: str | None) -> Version | None:
    """The version the histogram and profile show: the one asked for, else the newest with an evaluation."""
    if version:
        return h.get(version)
    return next((v for v in reversed(h.versions) if v.evaluation), None)


def html(h: History, quality: QualitySettings, version: str | None = None) -> str:
    names = _names(h)
    parts = [(f"<!doctype html><html lang=en><head><meta charset=utf-8><title>ci-kit report: {escape(h.name)}</title>"
              f"<style>{CSS}</style></head><body><h1>{escape(h.name)}: model quality per version</h1>"),
             "<p><small>" + ", ".join(f"{escape(r)} = {escape(i)}" for r, i in h.indexes.items())
             + ". A version's baseline is the newest stable version before it.</small></p>", _table(h, names)]
    if names and any(v.metrics for v in h.versions):
        parts.append("<h2>Metrics over versions</h2>"
                     + _img("metrics over versions", lambda: plots.metrics_over_versions(h.versions, names[:MAX_METRICS])))
    pick = chosen(h, version)
    if pick is not None and pick.evaluation:
        parts.append(_version_section(h, pick, quality))
    parts.append(_promotions(h))
    return "\n".join(parts) + "</body></html>\n"


def _table(h: History, names: list[str]) -> str:
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    rows = []
    for v in reversed(h.versions):
        cls = v.state.replace(" ", "-")
        why = "<br>".join(escape(p) for p in v.refusal)
        rows.append(f"<tr><td>{escape(v.version)}</td><td class='{cls}'>{escape(v.state)}</td>"
                    + "".join(f"<td>{_fmt(v.metrics.get(n))}</td>" for n in names)
                    + f"<td>{escape(v.baseline) or '—'}</td><td>{why}</td></tr>")
    return (f"<h2>Versions</h2><table><tr><th>version</th><th>state</th>{head}<th>baseline</th><th>quality gate</th></tr>"
            + "".join(rows) + "</table>")


def _img(alt: str, draw: Callable[[], str]) -> str:
    """A plot as an embedded image, or a note saying how to get it when matplotlib is absent."""
    if not plots.available():
        console.step("report: matplotlib is not installed: no plots on the page (pip install 'ci-kit[quality]')")
        return f"<p><small>[{escape(alt)}: no plot, matplotlib is not installed; pip install 'ci-kit[quality]']</small></p>"
    return f"<img alt='{escape(alt)}' src='{draw()}'>"


def _version_section(h: History, v: Version, quality: QualitySettings) -> str:
    base = h.get(v.baseline) if v.baseline else None
    out = [f"<h2>Version {escape(v.version)}" + (f" against baseline {escape(base.version)}" if base else "") + "</h2>"]
    resp = v.evaluation.get("responses") if v.evaluation else None
    if resp:
        old = base.evaluation.get("responses") if base and base.evaluation else None
        band = parse(quality.rules).undecided
        out.append(_img(f"responses of {v.version}", lambda: plots.responses(v.version, resp, v.baseline, old, band)))
        out.append(f"<p><small>reference set sha256 {escape(resp['reference']['sha256'])}"
                   + (" (baseline: same)" if old and old['reference']['sha256'] == resp['reference']['sha256']
                      else " (baseline: another reference set)" if old else "") + "</small></p>")
    out.append(_profile(v, base))
    return "\n".join(out)


def _profile(v: Version, base: Version | None) -> str:
    now = (v.evaluation or {}).get("inputs", {}).get("columns") or {}
    old = ((base.evaluation or {}).get("inputs", {}).get("columns") or {}) if base else {}
    if not now:
        return "<p>No input profile recorded.</p>"
    rows = []
    for col, p in now.items():
        q = old.get(col, {})
        new = sorted(set(p.get("categories") or []) - set(q.get("categories") or [])) if q.get("categories") is not None else []
        gone = sorted(set(q.get("categories") or []) - set(p.get("categories") or [])) if p.get("categories") is not None else []
        med = f"{_fmt(q.get('quantiles', {}).get('p50'))} → {_fmt(p.get('quantiles', {}).get('p50'))}" if p.get("quantiles") else "—"
        rows.append(f"<tr><td>{escape(col)}</td><td>{_fmt(q.get('missing'))} → {_fmt(p['missing'])}</td>"
                    f"<td>{escape(', '.join(new)) or '—'}</td><td>{escape(', '.join(gone)) or '—'}</td><td>{med}</td></tr>")
    return ("<h3>Input profile against the baseline</h3><table><tr><th>column</th><th>missing rate</th>"
            "<th>new categories</th><th>categories gone</th><th>median</th></tr>" + "".join(rows) + "</table>")


def _promotions(h: History) -> str:
    rows = [f"<tr><td>{escape(v.version)}</td><td>{escape(p['to'])}</td><td>{escape(str(p['by']))}</td><td>{escape(p['at'])}</td>"
            f"<td>{'FORCED' if p['forced'] else 'no'}</td><td>{'<br>'.join(escape(x) for x in (p.get('quality') or {}).get('problems', []))}</td></tr>"
            for v in reversed(h.versions) for p in v.promoted]
    if not rows:
        return "<h2>Promotion history</h2><p>No promotions.</p>"
    return ("<h2>Promotion history</h2><table><tr><th>version</th><th>to</th><th>by</th><th>at</th><th>forced</th>"
            "<th>quality problems forced past</th></tr>" + "".join(rows) + "</table>")


def markdown(h: History) -> str:
    """The comparison table, newest first, with the headline's change against the baseline."""
    names = _names(h)[:MAX_METRICS]
    lines = [f"### ci-kit report: `{h.name}`", "", "| version | state | " + " | ".join(names) + " | baseline | Δ "
             + (h.headline or "") + " |", "|---|---|" + "---|" * len(names) + "---|---|"]
    for v in reversed(h.versions):
        base = h.get(v.baseline) if v.baseline else None
        delta = (f"{v.metrics[h.headline] - base.metrics[h.headline]:+.4g}"
                 if base and h.headline in v.metrics and h.headline in base.metrics else "—")
        state = f"❌ {v.state}" if v.state == "refused" else v.state
        lines.append(f"| {v.version} | {state} | " + " | ".join(_fmt(v.metrics.get(n)) for n in names)
                     + f" | {v.baseline or '—'} | {delta} |")
    return "\n".join(lines)


def write(path: Path, text: str) -> Path:
    """Atomically, so a CI artifact step never picks up half a page."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    part.write_text(text, encoding="utf-8")
    os.replace(part, path)
    return path
