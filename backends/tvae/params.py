"""The parameters of `tvae` and `tvae.dp` as data: one network, two ways to train it.

Both share VAEParams (the network, its optimiser, sampling). tvae adds early stopping on a held-back
validation share; tvae.dp adds the privacy budget and trains for exactly `epochs` epochs without
validation (early stopping would read private rows outside the mechanism), with defaults tuned for DP-SGD.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from fairsynth.backends.base import BackendParams, Epochs, LearningRate
from fairsynth.backends.preprocessing import MAX_LEVELS

# rows seen in all epochs together before training stops: 92 epochs of the lab table's 21,600 training rows (its
# validation loss still creeps down at 100 epochs; both evaluators' scores equal those of its 115 early-stopped
# epochs), all 300 of SUPPORT2's
ROW_BUDGET = 2_000_000
# rows the trained network draws after training to calibrate its marginals (numeric grids, small categorical
# columns' output biases; generator._calibrate_marginals): enough for a 1,000-point grid. bench_peers --defaults
# --rules, seed 0 (sdmetrics / mostlyai-qa): NAFLD1 0.960 / 0.707 -> 0.966 / 0.718 (age's univariate qa 0.90 ->
# 0.97), the lab table 0.823 / 0.893 -> 0.831 / 0.897; +2-4 CPU s of a fit (bench_qa_columns.py shows where)
CALIBRATION_ROWS = 20_000
SamplePrecision = Literal["auto", "float32", "bfloat16"]

# declared once, so tvae.dp gives its own defaults without repeating bounds and descriptions
BatchSize = Annotated[
    int | None, Field(ge=1, description="Training rows per optimisation step; empty: train rows / 50, in [128, 500].")
]
WeightDecay = Annotated[float, Field(ge=0, description="Adam's weight decay (L2 penalty on the weights).")]
HiddenSize = Annotated[
    int | None,
    Field(
        ge=1,
        description="Units per hidden layer; empty: 128, but when a row encodes to at most 32 values 256 on 10,000 "
        "training rows or more, else 64.",
    ),
]
LatentDim = Annotated[
    int | None,
    Field(
        ge=1,
        description="Size of the latent space; empty: 64 when a row encodes to at most 32 values and there are "
        "10,000 training rows or more, else 32.",
    ),
]
LossFactor = Annotated[float, Field(gt=0, description="Weight of the reconstruction loss against the KL term.")]


class VAEParams(BackendParams):
    """The network, its optimiser and sampling: what tvae and tvae.dp share."""

    epochs: Epochs = 300
    batch_size: BatchSize = None
    learning_rate: LearningRate = 1e-3
    weight_decay: WeightDecay = 1e-5
    latent_dim: LatentDim = None
    hidden_size: HiddenSize = None
    hidden_layers: int = Field(2, ge=1, description="Hidden layers in the encoder and in the decoder.")
    loss_factor: LossFactor = 1.0
    n_quantiles: int = Field(1000, ge=2, description="Points of each numeric column's quantile grid.")
    max_levels: int = Field(
        MAX_LEVELS,
        ge=1,
        description="Most levels of a category column the network learns one-hot (its most frequent); the rest "
        "share the rare token and are drawn by their training frequencies (64 fits a 2,000-level column twice as "
        "fast, at 0.01 lower mostlyai-qa accuracy on the lab table).",
    )
    calibration_rows: int = Field(
        CALIBRATION_ROWS,
        ge=0,
        description="Rows the trained network draws to bring its sampled marginals onto the training ones (numeric "
        "columns' quantile maps, small categorical columns' level shares); 0: no calibration.",
    )
    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|cuda(:\d+)?)$",
        description="'auto' (a CUDA GPU when there is one), 'cpu', 'cuda' or 'cuda:N'.",
    )
    sample_precision: SamplePrecision = Field(
        "auto",
        description="The decoder's precision when sampling; 'auto': bfloat16 on a CPU with native bf16 dot products, "
        "else float32.",
    )


class TVAEParams(VAEParams):
    """tvae: the shared network, trained with early stopping on a held-back validation share."""

    validation_share: float = Field(
        0.1, ge=0, lt=0.5, description="Share of training rows held back for early stopping; 0: no validation."
    )
    patience: int = Field(
        20, ge=0, description="Epochs without a better validation loss before training stops; 0: never early."
    )
    row_budget: int | None = Field(
        ROW_BUDGET,
        ge=1,
        description="Most training rows seen in all epochs together: a large table trains fewer than `epochs` "
        "epochs (2,000,000: 92 on 21,600 rows); empty: `epochs` on any table.",
    )


class DPTVAEParams(VAEParams):
    """tvae.dp: the shared network trained with DP-SGD to a privacy budget, with defaults tuned for it."""

    epochs: Epochs = 50
    batch_size: BatchSize = 1000
    learning_rate: LearningRate = 2e-3
    weight_decay: WeightDecay = 0.0
    hidden_size: HiddenSize = 64
    latent_dim: LatentDim = 32
    loss_factor: LossFactor = 2.0
    calibration_rows: int = Field(0, ge=0, description="As tvae's; off by default: not measured under DP-SGD.")
    epsilon: float = Field(3.0, gt=0, description="Privacy budget the network's training may spend (DP-SGD).")
    delta: float | None = Field(
        None, gt=0, lt=1, description="Chance the epsilon guarantee fails; empty: 1/n² for n training rows."
    )
    max_grad_norm: float = Field(1.0, gt=0, description="Bound each row's gradient is clipped to.")
