"""The plotly figures of the HTML reports and of the UI's Compare page, built in one place.

Each function takes tables or typed results (evaluation.results) and returns a plotly Figure; the
report embeds it in HTML, the UI hands it to Streamlit. Labels and goals come from the metric
declarations (evaluation.metrics).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from fairsynth.metadata.schema import TEMPORAL_KINDS, ColumnSpec, column_values
from fairsynth.services.run.evaluation.frames import is_numeric, listed_labels
from fairsynth.services.run.evaluation.metrics import (
    COLUMN_PAIR_TRENDS,
    COLUMN_SHAPES,
    DCR_SHARE,
    MIA_AUC,
    QUALITY,
    TRTR,
    TSTR,
    Metric,
)
from fairsynth.services.run.evaluation.results import Association, DistanceToClosestRecord, UtilityResult

REAL_COLOUR, SYNTH_COLOUR, HOLDOUT_COLOUR = "#1f77b4", "#ff7f0e", "#2ca02c"
TOP_LEVELS = 20  # categories shown per bar chart; the rest (and real ones the dictionary does not list) are summed
REST_LABEL = "(other levels)"
INVENTED_SHOWN = 5  # categories only the synthetic table has, shown by name
BINS = 30


def styled(figure: go.Figure, height: int = 340) -> go.Figure:
    """The common look: white template, compact margins, the given height."""
    return figure.update_layout(height=height, margin={"l": 50, "r": 20, "t": 50, "b": 50}, template="plotly_white")


def distribution_figure(spec: ColumnSpec, real: pd.Series, synthetic: dict[str, pd.Series]) -> go.Figure:
    """One column, real vs each synthetic table: shares per bin (numbers, dates) or per category."""
    values = {"real": column_values(real, spec), **{name: column_values(s, spec) for name, s in synthetic.items()}}
    colours = _colours(list(values))
    if is_numeric(spec) and spec.kind not in TEMPORAL_KINDS and values["real"].dropna().nunique() <= 2:
        texts = {n: v.map(lambda x: f"{x:g}", na_action="ignore").fillna("(missing)") for n, v in values.items()}
        figure = _category_bars(texts, colours, set(texts["real"]))  # a yes/no column as 0/1: two bars, no bins
    elif is_numeric(spec):
        figure = _histograms({n: v.dropna() for n, v in values.items()}, colours, spec.kind in TEMPORAL_KINDS)
    else:
        figure = _category_bars({n: v.fillna("(missing)") for n, v in values.items()}, colours, listed_labels(spec))
    figure.update_layout(title=f"{spec.name} ({spec.kind.value})", yaxis_title="share of rows")
    return styled(figure, height=300)


def _colours(names: list[str]) -> dict[str, str | None]:
    """Real in blue; a single synthetic table in orange, several in plotly's own colour sequence."""
    if len(names) == 2:
        return {names[0]: REAL_COLOUR, names[1]: SYNTH_COLOUR}
    return {name: REAL_COLOUR if name == "real" else None for name in names}


def _histograms(values: dict[str, pd.Series], colours: dict, temporal: bool) -> go.Figure:
    both = pd.concat(list(values.values()))
    lo, hi = (float(both.min()), float(both.max())) if len(both) else (0.0, 1.0)
    edges = np.linspace(lo, hi if hi > lo else lo + 1, BINS + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    x = pd.Timestamp("1970-01-01") + pd.to_timedelta(centres, unit="D") if temporal else centres
    figure = go.Figure()
    for name, column in values.items():
        shares = np.histogram(column, bins=edges)[0] / max(len(column), 1)
        if name == "real":  # real as filled bars, each synthetic table as an outline over them: all stay readable
            figure.add_bar(x=x, y=shares, name=name, marker_color=colours[name], opacity=0.45)
        else:
            figure.add_scatter(x=x, y=shares, name=name, mode="lines", line={"shape": "hvh", "width": 2})
            if colours[name]:
                figure.data[-1].line.color = colours[name]
    return figure.update_layout(bargap=0)


def _category_bars(values: dict[str, pd.Series], colours: dict, listed: set[str]) -> go.Figure:
    """Shares per category; a real level is named only when listed (never one under the rare-level threshold)."""
    shares = {name: column.value_counts(normalize=True) for name, column in values.items()}
    real = shares["real"]
    levels = [level for level in real.index if level == "(missing)" or str(level).lower() in listed][:TOP_LEVELS]
    invented = list(dict.fromkeys(v for s in shares.values() for v in s.index if v not in real.index))
    shown = levels + invented[:INVENTED_SHOWN]
    figure = go.Figure()
    for name, share in shares.items():
        heights = [float(share.get(level, 0.0)) for level in shown]
        figure.add_bar(
            x=[str(c) for c in shown] + [REST_LABEL],
            y=heights + [max(0.0, 1.0 - sum(heights))],
            name=name,
            marker_color=colours[name],
        )
    return figure.update_layout(barmode="group")


def association_figure(association: Association) -> go.Figure:
    """Heatmap of |real − synthetic| association per column pair (|Spearman|, Cramér's V, η)."""
    names = association.columns
    difference = np.abs(np.array(association.real) - np.array(association.synthetic))
    figure = go.Figure(
        go.Heatmap(
            z=difference,
            x=names,
            y=names,
            zmin=0,
            zmax=max(0.2, float(difference.max())) if difference.size else 1.0,
            colorscale="Reds",
            colorbar={"title": "|diff|"},
        )
    )
    figure.update_layout(
        title="Association difference |real − synthetic| (|Spearman|, Cramér's V, η)", yaxis={"autorange": "reversed"}
    )
    return styled(figure, height=max(420, min(900, 22 * len(names) + 200)))


def association_matrices_figure(association: Association) -> go.Figure:
    """The real and the synthetic association matrices side by side, on one 0-1 scale."""
    names = association.columns
    figure = make_subplots(rows=1, cols=2, subplot_titles=("real", "synthetic"), horizontal_spacing=0.12)
    for column, matrix in enumerate((association.real, association.synthetic), start=1):
        figure.add_trace(
            go.Heatmap(z=matrix, x=names, y=names, zmin=0, zmax=1, colorscale="Blues", showscale=column == 2),
            row=1,
            col=column,
        )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(title="Association between columns (|Spearman|, Cramér's V, η)")
    return styled(figure, height=max(420, min(900, 22 * len(names) + 200)))


def association_figures(association: Association | None) -> list[go.Figure]:
    """The column-pair figures the report and the Compare page both show: real next to synthetic, then |diff|."""
    if association is None or not association.columns:
        return []
    return [association_matrices_figure(association), association_figure(association)]


def dcr_figure(results: dict[str, DistanceToClosestRecord]) -> go.Figure:
    """Distance to the closest training row per synthetic table, against the real holdout's baseline.

    With one table its distance to the closest holdout row is drawn too.
    """
    figure = go.Figure()
    single = len(results) == 1
    for name, dcr in results.items():
        figure.add_trace(_distance_line(dcr, "synthetic_to_train", f"{name} → train", SYNTH_COLOUR if single else None))
        if single:
            figure.add_trace(_distance_line(dcr, "synthetic_to_holdout", f"{name} → holdout", HOLDOUT_COLOUR))
    if results:
        baseline = next(iter(results.values()))
        figure.add_trace(_distance_line(baseline, "holdout_to_train", "holdout → train (real baseline)", REAL_COLOUR))
    share = f" ({_with_goal(DCR_SHARE, next(iter(results.values())).share_closer_to_train)})" if single else ""
    figure.update_layout(
        title=f"Distance to closest record{share}",
        xaxis_title="distance (standardised, mixed-type)",
        yaxis_title="share of rows",
    )
    return styled(figure)


def _distance_line(dcr: DistanceToClosestRecord, key: str, name: str, colour: str | None) -> go.Scatter:
    edges = np.array(dcr.histogram_edges)
    counts = np.array(getattr(dcr, key).histogram, dtype=float)
    return go.Scatter(
        x=(edges[:-1] + edges[1:]) / 2,
        y=counts / max(counts.sum(), 1),
        name=name,
        mode="lines",
        line={"color": colour, "shape": "hvh"},
    )


def utility_figure(utility: UtilityResult) -> go.Figure:
    """TRTR beside TSTR per model, with the chance level."""
    figure = go.Figure()
    for metric, name, colour in (
        (TRTR, "train real, test real", REAL_COLOUR),
        (TSTR, "train synthetic, test real", SYNTH_COLOUR),
    ):
        scores = [getattr(model, metric.name) for model in utility.models.values()]
        figure.add_bar(x=list(utility.models), y=scores, name=name, marker_color=colour)
    figure.add_hline(y=utility.chance, line_dash="dot", annotation_text="chance")
    figure.update_layout(title=f"Predicting '{utility.target}' ({utility.task}, {utility.metric})", barmode="group")
    return styled(figure)


def comparison_figures(table: pd.DataFrame) -> list[go.Figure]:
    """Bars across backends (one row each in `table`, columns named by the metrics): quality, privacy, utility."""
    return [
        _metric_bars(table, "Quality", (QUALITY, COLUMN_SHAPES, COLUMN_PAIR_TRENDS), y_range=[0, 1]),
        _metric_bars(table, "Privacy", (DCR_SHARE, MIA_AUC), y_range=[0, 1]),
        _metric_bars(table, "Utility (best model)", (TSTR, TRTR)),
    ]


def _metric_bars(table: pd.DataFrame, title: str, metrics: tuple[Metric, ...], y_range=None) -> go.Figure:
    figure = go.Figure()
    for metric in metrics:
        figure.add_bar(x=list(table["backend"]), y=table[metric.name], name=metric.label)
    goals = {metric.goal_text for metric in metrics}
    if len(goals) == 1:
        title = f"{title} ({goals.pop()})"
    for target in {metric.target for metric in metrics if metric.target is not None}:
        figure.add_hline(y=target, line_dash="dot", annotation_text=f"ideal {target:g}")
    figure.update_layout(title=title, barmode="group", yaxis_range=y_range)
    return styled(figure)


def _with_goal(metric: Metric, value: float | None) -> str:
    return f"{metric.label} {metric.text(value)}, {metric.goal_text}"
