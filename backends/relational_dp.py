"""relational.dp: relational with every table learned by tvae.dp, and nothing else read from the real rows.

What relational measures on the training rows, this variant takes elsewhere:
- children per parent: still a column of the parent's training frame (so learned inside the parent's DP model),
  clipped to the public bound `max_children`; a parent's rows beyond it are dropped before fitting (the number
  dropped is reported in the fit's details);
- the matcher's means, spreads and levels: from a draw of each child table's own DP model (its context columns);
- the columns kept constant within a parent: those constant within at least `constant_share` of the synthetic
  parents with several children in a calibration draw of whole subjects from the DP models;
- keys: numbered from the public `key_start` (text keys: the public `key_prefix`), never from the real keys' range.

Privacy: each table's training rows are protected at row level by tvae.dp with its epsilon (`epsilon` for the
root table, `child_epsilon` for every other). A subject contributes one root row and at most max_children rows
per child table (max_children^depth for a deeper table), so for a subject the guarantee follows by group
privacy and basic composition: epsilon_subject = sum over tables of rows_per_subject x epsilon_table, and
delta_subject = sum of rows_per_subject x exp((rows_per_subject - 1) x epsilon_table) x delta_table (at most 1:
a loose bound, vacuous when child_epsilon is large). FitResult carries the subject-level pair; its details each
table's. Not covered by epsilon: what tvae.dp states for each table (its codec's and encoding's statistics), and
the count of rows the clip dropped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import ClassVar, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from fairsynth.backends import registry
from fairsynth.backends.base import BackendError, BackendParams, Capabilities, FitResult, ProgressCallback
from fairsynth.backends.relational import CONTEXT, RelationalGenerator, RelationalParams, _Matcher
from fairsynth.metadata.dataset import DatasetSchema

DP_TABLE_BACKEND = "tvae.dp"
NOT_COVERED = (
    "Not covered by epsilon: each table's codec and encoding statistics as tvae.dp states them, and the number "
    "of child rows the max_children clip dropped (reported to the data holder in these details)."
)


class RelationalDPParams(RelationalParams):
    """relational.dp: every table learned by tvae.dp; the budget per table and the public bounds it relies on."""

    table_backend: Literal["tvae.dp"] = Field(DP_TABLE_BACKEND, description="Every table is learned by tvae.dp.")
    epochs: int | None = Field(None, ge=1, description="Epochs of each table's DP-SGD; empty: tvae.dp's default.")
    batch_size: int | None = Field(None, ge=1, description="Rows per DP-SGD step; empty: tvae.dp's default.")
    epsilon: float = Field(3.0, gt=0, description="Row-level privacy budget of the root table's model.")
    child_epsilon: float | None = Field(
        None, gt=0, description="Row-level budget of each other table's model; empty: epsilon / max_children."
    )
    delta: float | None = Field(
        None, gt=0, lt=1, description="Each table's delta; empty: 1/n² for its n training rows (tvae.dp's default)."
    )
    max_children: int = Field(
        10, ge=1, description="Most children a parent keeps per child table; rows beyond are dropped before fitting."
    )
    key_start: int = Field(
        1_000_000_000, ge=0, description="First synthetic number of a numeric key (public: never read from data)."
    )
    key_prefix: str = Field("syn-", min_length=1, description="Prefix of synthetic text keys (public).")
    calibration_rows: int = Field(2_000, ge=10, description="Rows drawn from each child model to scale the matcher.")
    calibration_subjects: int = Field(
        500, ge=10, description="Subjects drawn from the DP models to find the columns constant within a parent."
    )
    constant_share: float = Field(
        0.9, gt=0, le=1, description="Share of synthetic parents a column must be constant within to be kept so."
    )


class RelationalDPGenerator(RelationalGenerator):
    """relational with tvae.dp on every table; matcher, constants and counts from the DP models, keys public."""

    name: ClassVar[str] = "relational.dp"
    capabilities: ClassVar[Capabilities] = Capabilities(
        description="Several related tables with differential privacy: every table learned by tvae.dp (DP-SGD), "
        "children per parent clipped to a public bound, the matching statistics taken from the DP models' own "
        "samples; subject-level epsilon by group privacy.",
        license="Apache-2.0",
        family="torch",
        dp=True,
        conditional=True,
        model_family="hierarchical per-table generators (DP-SGD)",
    )
    Params: ClassVar[type[BackendParams]] = RelationalDPParams
    params: RelationalDPParams

    @classmethod
    def availability(cls) -> tuple[bool, str]:
        """Available wherever tvae.dp is (Opacus installed)."""
        info = registry.backend_info(DP_TABLE_BACKEND)
        return info.available, info.reason

    @classmethod
    def shape_problem(cls, schema: DatasetSchema) -> str | None:
        """One root table: the row counts of several roots would be read from the real rows."""
        roots = schema.roots()
        if len(roots) > 1:
            return f"relational.dp takes one root table, not {len(roots)} ({', '.join(roots)}); leave the others out."
        return None

    def fit(
        self,
        tables: Mapping[str, pd.DataFrame],
        schema: DatasetSchema,
        *,
        seed: int,
        progress: ProgressCallback | None = None,
    ) -> FitResult:
        """Clip children per parent, fit every table with tvae.dp, then calibrate from the DP models' samples."""
        start = time.perf_counter()
        clipped, dropped = clip_children(tables, schema, self.params.max_children)
        try:
            super().fit(clipped, schema, seed=seed, progress=progress)
        except ValueError as exc:  # Opacus finds no noise that keeps a table's training within its epsilon
            if "privacy budget is too low" not in str(exc):
                raise
            raise BackendError(
                f"relational.dp: epsilon {self.params.epsilon:g} for the root table or {self._child_epsilon():g} for "
                "each child table is too small for DP-SGD on its rows; raise epsilon or child_epsilon."
            ) from exc
        self.root_rows = dict.fromkeys(schema.roots(), 1)  # one root: its real row count is not kept
        self._calibrate(seed)
        epsilon, delta, per_table = self._subject_guarantee()
        details = {
            "tables": schema.top_down(),
            "privacy_unit": "one subject (a root row with every descendant row)",
            "composition": "group privacy over each table's rows per subject, basic composition over tables",
            "per_table": per_table,
            "max_children": self.params.max_children,
            "rows_dropped_by_max_children": dropped,
            "not_covered_by_epsilon": NOT_COVERED,
        }
        return FitResult(
            seconds=time.perf_counter() - start,
            epochs=self.params.epochs,
            epsilon=epsilon,
            delta=delta,
            details=details,
        )

    def _table_params(self, name: str) -> dict[str, object]:
        """tvae.dp's parameters for one table: its epsilon, the delta, the epochs when given."""
        root = self._fitted_schema().parent_of(name) is None
        params: dict[str, object] = {"epsilon": self.params.epsilon if root else self._child_epsilon()}
        if self.params.delta is not None:
            params["delta"] = self.params.delta
        return params | super()._table_params(name)

    def _child_epsilon(self) -> float:
        return self.params.child_epsilon or self.params.epsilon / self.params.max_children

    # nothing measured on the real rows: public keys and bound; matcher and constants after the fit
    def _key_plan(self, name: str, data: pd.DataFrame, keys: set[str | None]) -> tuple[dict[str, int], dict[str, str]]:
        """Public keys: numbers from key_start, or key_prefix and a number, by the schema's source type."""
        table = self._fitted_schema().entry(name).table
        starts, prefixes = {}, {}
        for column in sorted(k for k in keys if k):
            if table.column(column).source_dtype.lower().startswith(("int", "uint")):
                starts[column] = self.params.key_start
            else:
                prefixes[column] = self.params.key_prefix
        return starts, prefixes

    def _count_limit(self, counts: pd.Series) -> int:
        return self.params.max_children

    def _constant_columns(self, data: pd.DataFrame, key: str, columns: list[str]) -> list[str]:
        return []  # found by _calibrate on synthetic subjects

    def _matcher(self, context: pd.DataFrame) -> _Matcher | None:
        return None  # scaled by _calibrate on the child model's own draw

    def _calibrate(self, seed: int) -> None:
        """The matchers from each child model's draw, then the constant columns from synthetic subjects."""
        schema, rng = self._fitted_schema(), np.random.default_rng(seed)
        children = [name for name in schema.top_down() if schema.parent_of(name) is not None]
        for name in children:
            model = self.models[name]
            pool = self._draw(name, self.params.calibration_rows, rng)
            model.matcher = _Matcher.fit(pool[[CONTEXT + c for c in model.context]].set_axis(model.context, axis=1))
        n = self.params.calibration_subjects
        subjects = next(self.sample(n, seed=seed, batch_subjects=n))
        for name in children:
            link, model = schema.parent_of(name), self.models[name]
            assert link is not None
            model.constant = mostly_constant(subjects[name], link.child_key, model.own, self.params.constant_share)

    def _subject_guarantee(self) -> tuple[float, float, dict[str, dict]]:
        """The subject-level (epsilon, delta) by group privacy and composition, and each table's own."""
        schema, epsilon, delta, per_table = self._fitted_schema(), 0.0, 0.0, {}
        for name in schema.top_down():
            fit, rows = self.table_fits[name], self._rows_per_subject(name)
            table_epsilon, table_delta = float(fit.epsilon or 0.0), float(fit.delta or 0.0)
            epsilon += rows * table_epsilon
            delta += rows * math.exp(min((rows - 1) * table_epsilon, 700.0)) * table_delta
            per_table[name] = {
                "epsilon": table_epsilon,
                "delta": table_delta,
                "privacy_unit": "one training row",
                "rows_per_subject": rows,
                "noise_multiplier": fit.details.get("noise_multiplier"),
                "max_grad_norm": fit.details.get("max_grad_norm"),
            }
        return epsilon, min(delta, 1.0), per_table

    def _rows_per_subject(self, name: str) -> int:
        """The most rows of a table one subject has after the clip: max_children per level below the root."""
        schema, rows = self._fitted_schema(), 1
        link = schema.parent_of(name)
        while link is not None:
            rows *= self.params.max_children
            link = schema.parent_of(link.parent)
        return rows


def clip_children(
    tables: Mapping[str, pd.DataFrame], schema: DatasetSchema, max_children: int
) -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """Each parent's first max_children rows per child table (in time order), descendants of dropped rows too;
    returns the tables and the rows dropped per child table."""
    clipped, dropped = {}, {}
    for name in schema.top_down():
        data, link = tables[name], schema.parent_of(name)
        if link is not None:
            sequence = schema.entry(name).sequence
            ordered = data.sort_values([link.child_key, sequence], kind="stable") if sequence else data
            kept = ordered[ordered[link.child_key].isin(clipped[link.parent][link.parent_key])]
            kept = kept[kept.groupby(link.child_key, sort=False).cumcount() < max_children]
            dropped[name] = len(data) - len(kept)
            data = kept.sort_index()
        clipped[name] = data.reset_index(drop=True)
    return clipped, dropped


def mostly_constant(children: pd.DataFrame, key: str, columns: list[str], share: float) -> list[str]:
    """Columns with one value within at least `share` of the parents that have several rows."""
    if children.empty:
        return []
    groups = children.groupby(key, sort=False)
    several = groups.size() > 1
    if not several.any():
        return []
    return [c for c in columns if float((groups[c].nunique(dropna=False)[several] <= 1).mean()) >= share]
