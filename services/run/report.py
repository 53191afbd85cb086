"""Self-contained, offline HTML reports: one per synthetic result and one comparing the backends.

Functions take the tables and typed results (evaluation.results) and return HTML text rendered from
the Jinja2 templates in services/run/templates (autoescaped). plotly's JavaScript is inlined once
in the page head, so the page works with no network. Writing the files is the pipeline's job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go
from jinja2 import Environment, PackageLoader
from markupsafe import Markup
from plotly.offline import get_plotlyjs

from fairsynth.metadata.dataset import DatasetSchema
from fairsynth.metadata.schema import TableSchema
from fairsynth.services.run import figures
from fairsynth.services.run.evaluation import compare
from fairsynth.services.run.evaluation.frames import compared_columns, subsample
from fairsynth.services.run.evaluation.gate import BY_DATASET_METRIC, BY_METRIC, Limit, ReleasePolicy, rule_limit
from fairsynth.services.run.evaluation.metrics import (
    ASSOCIATION_DIFFERENCE,
    ATTRIBUTE_INFERENCE_RISK,
    COLUMN_PAIR_TRENDS,
    COLUMN_SHAPES,
    CONFIDENCE,
    DATASET_METRICS,
    DCR_SHARE,
    ENFORCED_RULE_ADHERENCE,
    EPSILON,
    EXACT_COPIES,
    LINKABILITY_RISK,
    METRICS,
    MIA_AUC,
    QA_ACCURACY,
    QUALITY,
    RULE_ADHERENCE,
    SINGLING_OUT_RISK,
    UTILITY_RATIO,
    Metric,
)
from fairsynth.services.run.evaluation.relational_results import DatasetEvaluation
from fairsynth.services.run.evaluation.results import AttackRisk, EvaluationResult, RulesResult, UtilityResult
from fairsynth.services.run.evaluation.rules import adherence_table

PLOT_ROWS = 20_000  # rows of each table drawn for the per-column plots
MAX_COLUMN_PLOTS = 60  # per-column plots shown (the rest are listed)
PLOT_CONFIG = {"displayModeBar": False, "responsive": True}
DECISION_COLOURS = {"pass": "#1b7f3b", "flag": "#b36b00", "block": "#b00020"}
DECISION_WORDS = {
    "pass": "PASS: may be released",
    "flag": "FLAG: release only after review",
    "block": "BLOCK: must not be released",
}
LEVELS = {"pass": "", "flag": "warn", "block": "bad"}  # a card's CSS class from the gate's judgement
SCORECARD = (
    QUALITY,
    QA_ACCURACY,
    COLUMN_SHAPES,
    COLUMN_PAIR_TRENDS,
    ASSOCIATION_DIFFERENCE,
    ENFORCED_RULE_ADHERENCE,
    RULE_ADHERENCE,
    EXACT_COPIES,
    DCR_SHARE,
    MIA_AUC,
    SINGLING_OUT_RISK,
    LINKABILITY_RISK,
    ATTRIBUTE_INFERENCE_RISK,
    UTILITY_RATIO,
    EPSILON,
)
ASKED_FOR = (QA_ACCURACY,)  # taken only on request: a card when asked for, saying why when it could not be taken
DISCLAIMER = (
    "Synthetic data lowers, but does not remove, the risk that a person in the original table can be "
    "re-identified or that something about them can be learned. The measures in this report are "
    "estimates on samples of the data, against attacks we know of; they are not a guarantee. Treat "
    "the synthetic table as sensitive unless it was made with a formal privacy guarantee (differential "
    "privacy) whose budget you accept, and share it only under an agreement that forbids attempts to "
    "re-identify anyone."
)


def _number(value, pct: bool = False) -> str:
    """A number for people: '–' when missing, thousands separated, 3 decimals or a percentage."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.2%}" if pct else f"{value:.3f}"
    return str(value)


ENVIRONMENT = Environment(
    loader=PackageLoader("fairsynth.services.run", "templates"), autoescape=True, trim_blocks=True, lstrip_blocks=True
)
ENVIRONMENT.filters["number"] = _number
ENVIRONMENT.filters["pct"] = lambda value: _number(value, pct=True)


@dataclass
class Card:
    """One scorecard entry: a declared metric's value, a hint and the gate's level for it."""

    label: str
    value: str
    hint: str
    level: str


def plot(figure: go.Figure) -> Markup:
    """One figure as a self-rendering div (plotly.js itself is in the page head)."""
    return Markup(
        f'<div class="plot">{figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG)}</div>'
    )


def _page(template: str, title: str, subtitle: str, **context) -> str:
    return ENVIRONMENT.get_template(template).render(
        title=title,
        subtitle=subtitle,
        stamp=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        plotly_js=Markup(get_plotlyjs()),
        disclaimer=DISCLAIMER,
        decision_colours=DECISION_COLOURS,
        **context,
    )


# -- the per-result report ----------------------------------------------------------------------------
def render_report(
    train: pd.DataFrame,
    synthetic: pd.DataFrame,
    schema: TableSchema,
    result: EvaluationResult,
    *,
    title: str = "Synthetic data evaluation",
    backend: str | None = None,
    seed: int = 0,
) -> str:
    """The HTML report of one synthetic table: decision, scorecard, plots, disclaimer."""
    specs = compared_columns(schema, train, synthetic)
    shown = specs[:MAX_COLUMN_PLOTS]
    real_rows, synthetic_rows = subsample(train, PLOT_ROWS, seed), subsample(synthetic, PLOT_ROWS, seed + 1)
    privacy, association = result.privacy, result.quality.association
    return _page(
        "report.html.j2",
        title,
        f"Backend: {backend}" if backend else "",
        result=result,
        gate_words=DECISION_WORDS[result.gate.decision],
        left_out=left_out_note(result),
        cards=scorecard(result),
        column_rows=[_column_row(name, column, result.rules) for name, column in result.quality.columns.items()],
        rule_rows=rule_rows(result),
        plot_rows=PLOT_ROWS,
        column_plots=[
            plot(figures.distribution_figure(s, real_rows[s.name], {"synthetic": synthetic_rows[s.name]}))
            for s in shown
        ],
        not_plotted=[s.name for s in specs[len(shown) :]],
        association_plots=[plot(figure) for figure in figures.association_figures(association)],
        dcr_plot=plot(figures.dcr_figure({"synthetic": privacy.dcr})) if privacy.dcr else None,
        attacks=_attacks(privacy.anonymeter),
        utility_plot=plot(figures.utility_figure(result.utility))
        if isinstance(result.utility, UtilityResult)
        else None,
    )


def scorecard(result: EvaluationResult) -> list[Card]:
    """The scorecard: each declared headline metric with a hint and the release gate's level for it."""
    return [
        card(
            metric,
            result.value(metric),
            result.interval(metric),
            BY_METRIC.get(metric.name),
            result.gate.policy,
            _CONTEXT[metric.name](result) if metric.name in _CONTEXT else "",
        )
        for metric in SCORECARD
        if metric not in ASKED_FOR or result.quality.second_evaluator is not None
    ]


def dataset_scorecard(evaluation: DatasetEvaluation) -> list[Card]:
    """A dataset run's scorecard: every declared dataset metric it measured, judged by the dataset gate's limits."""
    return [
        card(
            metric,
            evaluation.value(metric),
            evaluation.interval(metric),
            BY_DATASET_METRIC.get(metric.name),
            evaluation.gate.policy,
        )
        for metric in DATASET_METRICS
        if evaluation.value(metric) is not None
    ]


def card(metric: Metric, value, interval, limit: Limit | None, policy: ReleasePolicy, context: str = "") -> Card:
    """One card: the value, its bootstrap interval, its context (else its goal) and the policy threshold."""
    parts = [interval_text(interval), context or metric.goal_text, limit.policy_text(policy) if limit else ""]
    hint = "; ".join(p.rstrip(".") for p in parts if p)  # a context may be a whole sentence
    return Card(metric.label, metric.text(value), hint, LEVELS[limit.judge(value, policy)] if limit else "")


def level(metric: Metric, result: EvaluationResult) -> str:
    """'bad' past a blocking policy threshold, 'warn' past a flagging one or near a blocking one, else ''."""
    return card(metric, result.value(metric), None, BY_METRIC.get(metric.name), result.gate.policy).level


def _interval(attack) -> str:
    if isinstance(attack, AttackRisk):
        return f"95% interval {_number(attack.ci_low)} – {_number(attack.ci_high)}"
    return getattr(attack, "skipped", "")


def interval_text(interval: list | None) -> str:
    """'95% interval 0.912 – 0.931' (the bootstrap interval of a headline figure), '' when unknown."""
    return f"{CONFIDENCE:.0%} interval {_number(interval[0])} – {_number(interval[1])}" if interval else ""


def left_out_note(result: EvaluationResult) -> str:
    """One sentence naming the columns and pairs the quality score leaves out, and why; '' when none is."""
    quality = result.quality
    parts = [f"{name} ({why})" for name, why in quality.columns_left_out.items()]
    parts += [f"pair {' × '.join(pair.columns)} ({pair.reason})" for pair in quality.pairs_skipped]
    return f"The quality score leaves out: {'; '.join(parts)}." if parts else ""


def _utility_context(result: EvaluationResult) -> str:
    utility = result.utility
    if not isinstance(utility, UtilityResult):
        return utility.skipped
    best = f", best model {utility.best.model}" if utility.best else ""
    return f"target {utility.target}{best}"


def _dp_context(result: EvaluationResult) -> str:
    dp = result.privacy.dp
    return f"δ = {dp.delta}" if dp.epsilon is not None else "not differentially private"


_CONTEXT = {
    QUALITY.name: lambda r: f"holdout reaches {_number(getattr(r.quality.holdout_reference, 'quality', None))}",
    QA_ACCURACY.name: lambda r: getattr(
        r.quality.second_evaluator, "skipped", "second evaluator, beside sdmetrics quality"
    ),
    COLUMN_SHAPES.name: lambda r: "marginal distributions",
    COLUMN_PAIR_TRENDS.name: lambda r: f"{r.quality.pairs_scored} of {r.quality.pairs_total} pairs scored",
    ASSOCIATION_DIFFERENCE.name: lambda r: f"mean |real − synthetic|, {ASSOCIATION_DIFFERENCE.goal_text}",
    ENFORCED_RULE_ADHERENCE.name: lambda r: _worst_rule_context(r.rules, enforced_only=True),
    RULE_ADHERENCE.name: lambda r: _worst_rule_context(r.rules, enforced_only=False),
    EXACT_COPIES.name: lambda r: f"{_number(r.privacy.exact_copies.rate, pct=True)} of rows",
    DCR_SHARE.name: lambda r: f"closer to train than holdout; {DCR_SHARE.goal_text}",
    MIA_AUC.name: lambda r: f"0.5 = no signal; {MIA_AUC.goal_text}",
    SINGLING_OUT_RISK.name: lambda r: _interval(getattr(r.privacy.anonymeter, "singling_out", None)),
    LINKABILITY_RISK.name: lambda r: _interval(getattr(r.privacy.anonymeter, "linkability", None)),
    ATTRIBUTE_INFERENCE_RISK.name: lambda r: "highest over the secrets tried",
    UTILITY_RATIO.name: _utility_context,
    EPSILON.name: _dp_context,
}


def _worst_rule_context(rules: RulesResult, *, enforced_only: bool) -> str:
    """Which rule is kept least and how many rules were measured, e.g. "worst: 'b >= a'; 5 rules"."""
    measured = [r for r in rules.rules if r.adherence is not None and (r.enforced or not enforced_only)]
    what = "enforced rules" if enforced_only else "rules, every status"
    if not measured:
        return f"no {what} measured"
    worst = min(measured, key=lambda r: r.adherence or 0.0)
    return f"worst: '{worst.text}'; {len(measured)} {what}"


def rule_rows(result: EvaluationResult) -> list[dict]:
    """One row per rule of the Rules table: the measured rule and the release gate's level for it."""
    policy = result.gate.policy
    return [
        {"rule": rule, "level": LEVELS[rule_limit(rule).judge(rule.adherence, policy)]} for rule in result.rules.rules
    ]


def _column_row(name: str, column, rules: RulesResult) -> dict:
    """One row of the per-column table, with the rules the column takes part in and their adherence."""
    kept = [f"{rule.text} ({_number(rule.adherence, pct=True)})" for rule in rules.of_column(name)]
    extent, categories = column.range, column.categories
    if extent:
        dated = extent.real_min_date is not None
        ends = [
            _short(getattr(extent, key + ("_date" if dated else "")))
            for key in ("real_min", "real_max", "synthetic_min", "synthetic_max")
        ]
        detail = f"real {ends[0]} – {ends[1]}; synthetic {ends[2]} – {ends[3]}"
    elif categories:
        examples = f" (e.g. {', '.join(categories.lost_examples[:3])})" if categories.lost_examples else ""
        detail = f"{categories.real_levels} levels; lost {categories.lost}, invented {categories.invented}{examples}"
    else:
        detail = ""
    return {"name": name, "column": column, "detail": detail, "rules": "; ".join(kept)}


def _short(value) -> str:
    if isinstance(value, str):
        return value[:10] if value.endswith("T00:00:00") else value[:16]
    return _number(value)


def _attacks(anonymeter) -> list[tuple[str, object]]:
    """(name, attack) rows of the anonymeter table; empty when anonymeter did not run or was skipped."""
    if anonymeter is None or not hasattr(anonymeter, "singling_out"):
        return []
    rows = [("singling out (univariate)", anonymeter.singling_out), ("linkability", anonymeter.linkability)]
    return rows + [(f"attribute inference: {k}", v) for k, v in anonymeter.attribute_inference.secrets.items()]


# -- the report of a dataset run (several tables) -----------------------------------------------------
def render_dataset_report(
    train: Mapping[str, pd.DataFrame],
    synthetic: Mapping[str, pd.DataFrame],
    schema: DatasetSchema,
    metrics: dict,
    *,
    backend: str | None = None,
    seed: int = 0,
) -> str:
    """The HTML report of one dataset backend: the release gate, the scorecard (subject privacy included), the
    relationships' measures, then per table its scores and plots."""
    root = schema.roots()[0]
    tables = []
    for name in schema.top_down():
        block, keys = metrics["tables"][name], schema.key_columns(name)
        table_schema = schema.entry(name).table.with_overrides(drop=keys)
        specs = compared_columns(table_schema, train[name], synthetic[name])
        shown = specs[:MAX_COLUMN_PLOTS]
        real, synth = subsample(train[name], PLOT_ROWS, seed), subsample(synthetic[name], PLOT_ROWS, seed + 1)
        tables.append(
            {
                "name": name,
                "real_rows": block["rows"]["real"],
                "synthetic_rows": block["rows"]["synthetic"],
                "quality": block["quality"],
                "holdout": block["holdout_reference"],
                "keys_copied": sum(block["real_keys_copied"].values()),
                "plots": [
                    plot(figures.distribution_figure(s, real[s.name], {"synthetic": synth[s.name]})) for s in shown
                ],
                "not_plotted": [s.name for s in specs[len(shown) :]],
            }
        )
    evaluation = DatasetEvaluation.from_metrics(metrics)
    return _page(
        "dataset_report.html.j2",
        "Synthetic dataset evaluation",
        f"Backend: {backend} · tables: {', '.join(schema.top_down())}" if backend else "",
        gate=evaluation.gate,
        gate_words=DECISION_WORDS[evaluation.gate.decision],
        cards=dataset_scorecard(evaluation),
        privacy=evaluation.privacy,
        subjects={"train": len(train[root]), "synthetic": len(synthetic[root])},
        relationships=metrics["relationships"],
        rules=metrics["rules"]["rules"],
        tables=tables,
        plot_rows=PLOT_ROWS,
    )


# -- the comparison across backends -----------------------------------------------------------------
def render_comparison(results: dict[str, EvaluationResult], *, title: str = "Backends compared") -> str:
    """The HTML comparison of several backends' results: table, release decisions, quality, privacy, utility."""
    if not results:
        raise ValueError("There are no results to compare; evaluate at least one backend first.")
    table = compare(results)
    shown = [m for m in METRICS if table[m.name].notna().any()]
    return _page(
        "comparison.html.j2",
        title,
        f"{len(results)} backends",
        metrics=shown,
        rows=[(row["backend"], row["decision"], _cells(row, table, shown)) for _, row in table.iterrows()],
        gates={name: result.gate for name, result in results.items()},
        rules=adherence_table(results),
        plots=[plot(figure) for figure in figures.comparison_figures(table)],
    )


def _interval_cell(metric: Metric, row: pd.Series, text: str) -> str:
    """A value with its bootstrap interval and the backends it is tied with (Metric.tied: within sampling noise)."""
    if f"{metric.name}_low" not in row or pd.isna(row[f"{metric.name}_low"]):
        return text
    text += f" ({_number(row[f'{metric.name}_low'])} – {_number(row[f'{metric.name}_high'])})"
    if row[f"{metric.name}_tied_with"]:
        text += f"; tied with {row[f'{metric.name}_tied_with']}"
    return text


def _cells(row: pd.Series, table: pd.DataFrame, metrics: list[Metric]) -> list[tuple[str, bool]]:
    """(text, best) per metric: best when no other backend's value is better, as the metric's goal says."""
    cells = []
    for metric in metrics:
        value, others = row[metric.name], table[metric.name].dropna()
        best = pd.notna(value) and len(others) > 1 and not any(metric.better(o, value) for o in others)
        cells.append((_interval_cell(metric, row, metric.text(None if pd.isna(value) else value)), best))
    return cells
