"""Self-contained, offline HTML reports: one per synthetic result and one comparing the backends.

Functions take the tables and metrics (see services/evaluation) and return HTML text; plotly's
JavaScript is inlined once in the first figure, so the page works with no network. Writing the
files is the pipeline's job.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from fairsynth.metadata.schema import TEMPORAL_KINDS, TableSchema
from fairsynth.services.run.evaluation import compare
from fairsynth.services.run.evaluation.frames import compared_columns, is_numeric, subsample, values_frame

PLOT_ROWS = 20_000  # rows of each table drawn for the per-column plots
MAX_COLUMN_PLOTS = 60  # per-column plots shown (the rest are listed)
TOP_LEVELS = 20  # categories shown per bar chart; the rest are summed as "other"
BINS = 30
REAL_COLOUR, SYNTH_COLOUR, HOLDOUT_COLOUR = "#1f77b4", "#ff7f0e", "#2ca02c"
DECISION_COLOURS = {"pass": "#1b7f3b", "flag": "#b36b00", "block": "#b00020"}
DISCLAIMER = (
    "Synthetic data lowers, but does not remove, the risk that a person in the original table can be "
    "re-identified or that something about them can be learned. The measures in this report are "
    "estimates on samples of the data, against attacks we know of; they are not a guarantee. Treat "
    "the synthetic table as sensitive unless it was made with a formal privacy guarantee (differential "
    "privacy) whose budget you accept, and share it only under an agreement that forbids attempts to "
    "re-identify anyone."
)
PLOT_CONFIG = {"displayModeBar": False, "responsive": True}
STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 2rem;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
.meta{color:#666;font-size:.9rem}
.decision{padding:1rem 1.2rem;border-radius:6px;color:#fff;margin:1rem 0}
.decision ul{margin:.4rem 0 0 1rem;padding:0}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(190px,1fr));gap:.7rem}
.card{border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem}
.card .value{font-size:1.5rem;font-weight:600} .card .label{font-size:.85rem;color:#555}
.card .hint{font-size:.75rem;color:#777}
.card.bad{border-color:#b00020;background:#fff4f5} .card.warn{border-color:#b36b00;background:#fffaf0}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f5f5f5} td:first-child,th:first-child{text-align:left}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:.5rem}
.disclaimer{border-left:4px solid #b36b00;background:#fffaf0;padding:.8rem 1rem;margin:1.5rem 0}
.note{color:#555;font-size:.85rem} .scroll{overflow-x:auto}
"""


class _Figures:
    """Collects plotly figures as HTML divs; only the first carries plotly's JavaScript."""

    def __init__(self) -> None:
        self.count = 0

    def div(self, figure: go.Figure, height: int = 340) -> str:
        """One figure as a self-rendering div."""
        figure.update_layout(height=height, margin={"l": 50, "r": 20, "t": 50, "b": 50}, template="plotly_white")
        text = figure.to_html(
            full_html=False, include_plotlyjs=self.count == 0, config=PLOT_CONFIG, div_id=f"plot-{self.count}"
        )
        self.count += 1
        return f'<div class="plot">{text}</div>'


# -- the per-result report ----------------------------------------------------------------------------
def render_report(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    metrics: dict,
    *,
    title: str = "Synthetic data evaluation",
    backend: str | None = None,
    seed: int = 0,
) -> str:
    """The HTML report of one synthetic table: decision, scorecard, plots, disclaimer."""
    figures = _Figures()
    sections = [
        _gate_section(metrics.get("gate")),
        _scorecard(metrics),
        _column_section(train, synthetic, schema, metrics, figures, seed),
        _association_section(metrics.get("quality", {}).get("association"), figures),
        _privacy_section(metrics.get("privacy", {}), figures),
        _utility_section(metrics.get("utility", {}), figures),
        _disclaimer(),
    ]
    subtitle = f"Backend: {backend}" if backend else ""
    return _page(title, subtitle, metrics, "".join(sections))


def _page(title: str, subtitle: str, metrics: dict | None, body: str) -> str:
    rows = (metrics or {}).get("rows")
    sizes = (
        f" · rows: {rows['train']:,} train, {rows['holdout']:,} holdout, {rows['synthetic']:,} synthetic"
        if rows
        else ""
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><style>{STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><div class='meta'>{html.escape(subtitle)}{html.escape(sizes)} · "
        f"made {stamp} by fairsynth</div>{body}</body></html>"
    )


def _gate_section(gate: dict | None) -> str:
    if not gate:
        return ""
    decision = gate["decision"]
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in gate["reasons"])
    words = {
        "pass": "PASS: may be released",
        "flag": "FLAG: release only after review",
        "block": "BLOCK: must not be released",
    }[decision]
    return (
        f"<div class='decision' id='gate' style='background:{DECISION_COLOURS[decision]}'>"
        f"<strong>Release gate — {words}</strong><ul>{reasons}</ul></div>"
    )


def _scorecard(metrics: dict) -> str:
    quality, privacy, utility = metrics.get("quality", {}), metrics.get("privacy", {}), metrics.get("utility", {})
    policy = (metrics.get("gate") or {}).get("policy", {})
    reference = (quality.get("holdout_reference") or {}).get("quality")
    copies = privacy.get("exact_copies", {})
    anonymeter = privacy.get("anonymeter") or {}
    cards = [
        (
            "Quality (sdmetrics)",
            quality.get("quality"),
            f"holdout reaches {_fmt(reference)}; policy ≥ {_fmt(policy.get('min_quality'))}",
            _level(quality.get("quality"), low=policy.get("min_quality")),
        ),
        ("Column shapes", quality.get("column_shapes"), "marginal distributions", ""),
        (
            "Column pair trends",
            quality.get("column_pair_trends"),
            f"{quality.get('pairs_scored', 0)} of {quality.get('pairs_total', 0)} pairs scored",
            "",
        ),
        (
            "Association difference",
            (quality.get("association") or {}).get("mean_abs_difference"),
            "mean |real − synthetic|, lower is better",
            "",
        ),
        (
            "Exact copies of training rows",
            copies.get("count"),
            f"{_fmt(copies.get('rate'), pct=True)} of rows; policy ≤ {policy.get('max_exact_copies', 0)}",
            "bad" if copies.get("count", 0) > policy.get("max_exact_copies", 0) else "",
        ),
        (
            "DCR share",
            (privacy.get("dcr") or {}).get("share_closer_to_train"),
            f"closer to train than holdout; ideal 0.5, policy ≤ {_fmt(policy.get('max_dcr_share'))}",
            _level((privacy.get("dcr") or {}).get("share_closer_to_train"), high=policy.get("max_dcr_share")),
        ),
        (
            "Membership-inference AUC",
            (privacy.get("membership_inference") or {}).get("auc"),
            f"0.5 = no signal; policy ≤ {_fmt(policy.get('max_mia_auc'))}",
            _level((privacy.get("membership_inference") or {}).get("auc"), high=policy.get("max_mia_auc")),
        ),
        (
            "Singling-out risk",
            (anonymeter.get("singling_out") or {}).get("risk"),
            _ci(anonymeter.get("singling_out")),
            "",
        ),
        ("Linkability risk", (anonymeter.get("linkability") or {}).get("risk"), _ci(anonymeter.get("linkability")), ""),
        (
            "Attribute-inference risk",
            (anonymeter.get("attribute_inference") or {}).get("max_risk"),
            "highest over the secrets tried",
            "",
        ),
        ("Utility TSTR / TRTR", _best_ratio(utility), utility.get("skipped") or f"target {utility.get('target')}", ""),
        (
            "DP ε",
            (privacy.get("dp") or {}).get("epsilon"),
            "not differentially private"
            if not (privacy.get("dp") or {}).get("epsilon")
            else f"δ = {(privacy.get('dp') or {}).get('delta')}",
            "",
        ),
    ]
    body = "".join(
        f"<div class='card {cls}'><div class='label'>{html.escape(label)}</div>"
        f"<div class='value'>{_fmt(value)}</div><div class='hint'>{html.escape(str(hint))}</div></div>"
        for label, value, hint, cls in cards
    )
    return f"<h2>Scorecard</h2><div class='cards' id='scorecard'>{body}</div>"


def _column_section(train, synthetic, schema, metrics, figures: _Figures, seed: int) -> str:
    specs = compared_columns(schema, train, synthetic)
    shown = specs[:MAX_COLUMN_PLOTS]
    real = values_frame(subsample(train, PLOT_ROWS, seed), shown)
    synth = values_frame(subsample(synthetic, PLOT_ROWS, seed + 1), shown)
    plots = "".join(figures.div(_column_figure(spec, real[spec.name], synth[spec.name]), height=300) for spec in shown)
    more = (
        (
            f"<p class='note'>{len(specs) - len(shown)} more columns are not plotted: "
            f"{html.escape(', '.join(s.name for s in specs[len(shown) :]))}.</p>"
        )
        if len(specs) > len(shown)
        else ""
    )
    absent = metrics.get("quality", {}).get("missing_columns") or []
    more += (
        (f"<p class='note'>Absent from the synthetic table: {html.escape(', '.join(absent))}.</p>") if absent else ""
    )
    return (
        f"<h2>Columns: real (training) vs synthetic</h2><p class='note'>Shares of rows, on up to {PLOT_ROWS:,} "
        f"rows of each table.</p>{_column_table(metrics.get('quality', {}).get('columns', {}))}"
        f"<div class='grid'>{plots}</div>{more}"
    )


def _column_figure(spec, real: pd.Series, synth: pd.Series) -> go.Figure:
    title = f"{spec.name} ({spec.kind.value})"
    if is_numeric(spec):
        return _histogram_figure(title, real.dropna(), synth.dropna(), temporal=spec.kind in TEMPORAL_KINDS)
    return _bar_figure(title, real.fillna("(missing)"), synth.fillna("(missing)"))


def _histogram_figure(title: str, real: pd.Series, synth: pd.Series, temporal: bool) -> go.Figure:
    both = pd.concat([real, synth])
    lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    x = pd.Timestamp("1970-01-01") + pd.to_timedelta(centres, unit="D") if temporal else centres
    figure = go.Figure()
    for name, values, colour in (("real", real, REAL_COLOUR), ("synthetic", synth, SYNTH_COLOUR)):
        counts, _ = np.histogram(values, bins=edges)
        figure.add_bar(x=x, y=counts / max(len(values), 1), name=name, marker_color=colour, opacity=0.6)
    figure.update_layout(title=title, barmode="overlay", bargap=0, yaxis_title="share of rows")
    return figure


def _bar_figure(title: str, real: pd.Series, synth: pd.Series) -> go.Figure:
    real_share = real.value_counts(normalize=True)
    synth_share = synth.value_counts(normalize=True)
    levels = list(real_share.index[:TOP_LEVELS])
    invented = [v for v in synth_share.index if v not in real_share.index][:5]
    categories = levels + invented + ["other"]
    figure = go.Figure()
    for name, share, colour in (("real", real_share, REAL_COLOUR), ("synthetic", synth_share, SYNTH_COLOUR)):
        shown = [float(share.get(level, 0.0)) for level in levels + invented]
        figure.add_bar(
            x=[str(c) for c in categories], y=shown + [max(0.0, 1.0 - sum(shown))], name=name, marker_color=colour
        )
    figure.update_layout(title=title, barmode="group", yaxis_title="share of rows")
    return figure


def _column_table(columns: dict) -> str:
    rows = []
    for name, entry in columns.items():
        extent = entry.get("range") or {}
        cats = entry.get("categories") or {}
        if extent:
            key = "_date" if "real_min_date" in extent else ""
            detail = (
                f"real {_short(extent.get('real_min' + key))} – {_short(extent.get('real_max' + key))}; synthetic "
                f"{_short(extent.get('synthetic_min' + key))} – {_short(extent.get('synthetic_max' + key))}"
            )
        else:
            detail = f"{cats.get('real_levels')} levels; lost {cats.get('lost')}, invented {cats.get('invented')}" + (
                f" (e.g. {', '.join(map(str, cats.get('lost_examples', [])[:3]))})" if cats.get("lost") else ""
            )
        rows.append(
            f"<tr><td>{html.escape(name)}</td><td>{entry.get('kind')}</td><td>{_fmt(entry.get('shape_score'))}</td>"
            f"<td>{_fmt(entry.get('validity'))}</td><td>{_fmt(entry.get('missing_share_real'), pct=True)}</td>"
            f"<td>{_fmt(entry.get('missing_share_synthetic'), pct=True)}</td><td>{html.escape(detail)}</td></tr>"
        )
    return (
        "<div class='scroll'><table id='columns'><tr><th>column</th><th>kind</th><th>shape</th><th>validity</th><th>missing real</th>"
        f"<th>missing synthetic</th><th>range / categories</th></tr>{''.join(rows)}</table></div>"
    )


def _association_section(association: dict | None, figures: _Figures) -> str:
    if not association or not association.get("columns"):
        return ""
    names = association["columns"]
    difference = np.abs(np.array(association["real"]) - np.array(association["synthetic"]))
    figure = go.Figure(
        go.Heatmap(
            z=difference,
            x=names,
            y=names,
            zmin=0,
            zmax=max(0.2, float(difference.max())),
            colorscale="Reds",
            colorbar={"title": "|diff|"},
        )
    )
    figure.update_layout(
        title="Association difference |real − synthetic| (|Spearman|, Cramér's V, η)", yaxis={"autorange": "reversed"}
    )
    size = max(420, min(900, 22 * len(names) + 200))
    return f"<h2>Column pairs</h2>{figures.div(figure, height=size)}"


def _privacy_section(privacy: dict, figures: _Figures) -> str:
    dcr = privacy.get("dcr")
    parts = ["<h2>Privacy</h2>"]
    copies = privacy.get("exact_copies") or {}
    parts.append(
        f"<p>Exact copies: {copies.get('count', 0):,} synthetic rows equal a training row "
        f"({_fmt(copies.get('rate'), pct=True)}), {copies.get('holdout_count', 0):,} equal a holdout row "
        f"({_fmt(copies.get('holdout_rate'), pct=True)}); the real table repeats "
        f"{_fmt(copies.get('real_repeat_rate'), pct=True)} of its holdout rows in train. "
        f"All {copies.get('synthetic_rows_checked', 0):,} synthetic rows were checked.</p>"
    )
    if dcr:
        edges = np.array(dcr["histogram_edges"])
        centres = (edges[:-1] + edges[1:]) / 2
        figure = go.Figure()
        for key, name, colour in (
            ("synthetic_to_train", "synthetic → train", SYNTH_COLOUR),
            ("synthetic_to_holdout", "synthetic → holdout", HOLDOUT_COLOUR),
            ("holdout_to_train", "holdout → train (real baseline)", REAL_COLOUR),
        ):
            counts = np.array(dcr[key]["histogram"], dtype=float)
            figure.add_scatter(
                x=centres,
                y=counts / max(counts.sum(), 1),
                name=name,
                mode="lines",
                line={"color": colour, "shape": "hvh"},
            )
        figure.update_layout(
            title=f"Distance to closest record (DCR share {dcr['share_closer_to_train']:.3f}, ideal 0.5)",
            xaxis_title="distance (standardised, mixed-type)",
            yaxis_title="share of rows",
        )
        parts.append(figures.div(figure))
        sizes = privacy.get("sample_sizes", {})
        mia = privacy.get("membership_inference", {})
        parts.append(
            f"<p class='note'>Distances on {sizes.get('train_reference', 0):,} training and "
            f"{sizes.get('holdout_reference', 0):,} holdout rows against {sizes.get('synthetic_queries', 0):,} "
            f"synthetic rows ({sizes.get('dimensions')} dimensions). Membership-inference AUC "
            f"{_fmt(mia.get('auc'))} with {mia.get('members', 0):,} members and {mia.get('non_members', 0):,} "
            f"non-members against {sizes.get('synthetic_for_mia', 0):,} synthetic rows. NNDR median "
            f"{_fmt((privacy.get('nndr') or {}).get('synthetic', {}).get('median'))} (holdout "
            f"{_fmt((privacy.get('nndr') or {}).get('holdout', {}).get('median'))}).</p>"
        )
    parts.append(_anonymeter_table(privacy.get("anonymeter")))
    if privacy.get("note"):
        parts.append(f"<p class='note'>{html.escape(privacy['note'])}</p>")
    return "".join(parts)


def _anonymeter_table(anonymeter: dict | None) -> str:
    if not anonymeter:
        return ""
    if "skipped" in anonymeter:
        return f"<p class='note'>anonymeter: {html.escape(anonymeter['skipped'])}</p>"
    rows = [
        ("singling out (univariate)", anonymeter.get("singling_out")),
        ("linkability", anonymeter.get("linkability")),
    ]
    rows += [
        (f"attribute inference: {k}", v)
        for k, v in (anonymeter.get("attribute_inference") or {}).get("secrets", {}).items()
    ]
    body = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{_fmt(r.get('risk'))}</td><td>{html.escape(_ci(r))}</td>"
        f"<td>{_fmt(r.get('attack_rate'))}</td><td>{_fmt(r.get('baseline_rate'))}</td>"
        f"<td>{_fmt(r.get('control_rate'))}</td></tr>"
        if "risk" in (r or {})
        else f"<tr><td>{html.escape(name)}</td><td colspan='5'>{html.escape((r or {}).get('skipped', ''))}</td></tr>"
        for name, r in rows
    )
    return (
        f"<table id='anonymeter'><tr><th>anonymeter attack ({anonymeter.get('n_attacks')} attacks)</th><th>risk</th>"
        f"<th>95% interval</th><th>attack rate</th><th>baseline rate</th><th>control rate</th></tr>{body}</table>"
    )


def _utility_section(utility: dict, figures: _Figures) -> str:
    if not utility or "skipped" in utility:
        return f"<h2>Utility</h2><p class='note'>{html.escape((utility or {}).get('skipped', 'Not measured.'))}</p>"
    models = utility["models"]
    figure = go.Figure()
    for key, name, colour in (
        ("trtr", "train real, test real", REAL_COLOUR),
        ("tstr", "train synthetic, test real", SYNTH_COLOUR),
    ):
        figure.add_bar(x=list(models), y=[models[m][key] for m in models], name=name, marker_color=colour)
    figure.add_hline(y=utility["chance"], line_dash="dot", annotation_text="chance")
    figure.update_layout(
        title=f"Predicting '{utility['target']}' ({utility['task']}, {utility['metric']})", barmode="group"
    )
    note = f"<p class='note'>{html.escape(utility['note'])}</p>" if utility.get("note") else ""
    return f"<h2>Utility</h2>{figures.div(figure)}{note}"


def _disclaimer() -> str:
    return f"<div class='disclaimer' id='disclaimer'><strong>Please read.</strong> {html.escape(DISCLAIMER)}</div>"


# -- the comparison across backends -----------------------------------------------------------------
def render_comparison(results: dict[str, dict], *, title: str = "Backends compared") -> str:
    """The HTML comparison of several backends' metrics: table, quality, privacy and utility bars."""
    if not results:
        raise ValueError("There are no results to compare; evaluate at least one backend first.")
    table = compare(results)
    figures = _Figures()
    backends = list(table["backend"])
    quality = go.Figure()
    for column, colour in (
        ("quality", REAL_COLOUR),
        ("column_shapes", HOLDOUT_COLOUR),
        ("column_pair_trends", SYNTH_COLOUR),
    ):
        quality.add_bar(x=backends, y=table[column], name=column.replace("_", " "), marker_color=colour)
    quality.update_layout(title="Quality (higher is better)", barmode="group", yaxis_range=[0, 1])
    privacy = go.Figure()
    privacy.add_bar(x=backends, y=table["dcr_share"], name="DCR share")
    privacy.add_bar(x=backends, y=table["mia_auc"], name="membership-inference AUC")
    privacy.add_hline(y=0.5, line_dash="dot", annotation_text="ideal 0.5")
    privacy.update_layout(title="Privacy (closer to 0.5 is better)", barmode="group", yaxis_range=[0, 1])
    utility = go.Figure()
    utility.add_bar(x=backends, y=table["tstr"], name="TSTR", marker_color=SYNTH_COLOUR)
    utility.add_bar(x=backends, y=table["trtr"], name="TRTR", marker_color=REAL_COLOUR)
    utility.update_layout(title="Utility (best model)", barmode="group")
    decisions = "".join(
        f"<tr><td>{html.escape(name)}</td><td style='color:{DECISION_COLOURS.get(m.get('gate', {}).get('decision'), '#222')}'>"
        f"<strong>{html.escape(str(m.get('gate', {}).get('decision')))}</strong></td>"
        f"<td style='text-align:left'>{html.escape(' '.join(m.get('gate', {}).get('reasons', [])))}</td></tr>"
        for name, m in results.items()
    )
    body = (
        f"<h2>Summary</h2>{_frame_table(table)}<h2>Release decisions</h2><table id='decisions'><tr><th>backend</th>"
        f"<th>decision</th><th>reasons</th></tr>{decisions}</table><h2>Plots</h2><div class='grid'>"
        f"{figures.div(quality)}{figures.div(privacy)}{figures.div(utility)}</div>{_disclaimer()}"
    )
    return _page(title, f"{len(results)} backends", None, body)


def _frame_table(table: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v) if not isinstance(v, str) else v)}</td>" for v in row) + "</tr>"
        for row in table.itertuples(index=False)
    )
    return f"<div class='scroll'><table id='comparison'><tr>{head}</tr>{rows}</table></div>"


# -- formatting -----------------------------------------------------------------------------------------
def _fmt(value, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        return f"{value:.2%}" if pct else f"{value:.3f}"
    return str(value)


def _short(value) -> str:
    if isinstance(value, str):
        return value[:10] if value.endswith("T00:00:00") else value[:16]
    return _fmt(value)


def _ci(risk: dict | None) -> str:
    if not risk or "ci_low" not in risk:
        return (risk or {}).get("skipped", "")
    return f"95% interval {risk['ci_low']:.3f} – {risk['ci_high']:.3f}"


def _level(value, *, low=None, high=None) -> str:
    if value is None:
        return ""
    if (low is not None and value < low) or (high is not None and value > high):
        return "bad"
    return ""


def _best_ratio(utility: dict) -> float | None:
    ratios = [m.get("ratio") for m in (utility or {}).get("models", {}).values() if m.get("ratio") is not None]
    return max(ratios) if ratios else None
