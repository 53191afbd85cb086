"""TVAEGenerator and DPTVAEGenerator: training, sampling and save/load around the VAE."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import time
import warnings
from abc import abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fairsynth.backends.base import (
    SAMPLING_HELPER_THREADS,
    BackendError,
    Capabilities,
    CodecGenerator,
    FitResult,
    ModelFileError,
    Progress,
    ProgressCallback,
)
from fairsynth.backends.preprocessing import EncodedBatch
from fairsynth.backends.tvae.encoding import TableEncoding
from fairsynth.backends.tvae.model import FusedAdam, TabularVAE, kl_divergence
from fairsynth.backends.tvae.params import DPTVAEParams, TVAEParams, VAEParams
from fairsynth.metadata.checksums import sha256_file

FORMAT = "fairsynth.tvae/1"
TENSORS_FILE = "tvae.safetensors"
INFO_FILE = "tvae.json"
QUANTILES_KEY = "encoding.quantiles"
WORK_PER_THREAD = 1 << 18  # rows x hidden units per step worth one more thread
ONE_HOT_ONCE = 1 << 24  # training values (rows x one-hot width) encoded once for all epochs, not per batch
AUTO_BATCH_STEPS, AUTO_BATCH_RANGE = 50, (128, 500)  # default batch: train rows / 50, kept in [128, 500]
# the default network: (most values a row encodes to, least training rows, hidden units, latent dimension), the
# first that fits (benchmarks/results/width.md, both evaluators). A narrow row with many rows learns more with
# 256 x 64: NAFLD1 (18 values, 14k rows) 0.952/0.685 -> 0.960/0.707 (seed 1: 0.947/0.688 -> 0.956/0.706), at
# mostly.argn's level; 128 x 32, 128 x 64, 256 x 128, 384 x 64 and 3 layers of 256 all scored lower. With fewer
# rows it lost (flchain, 30 values, 6.3k rows: sdmetrics 0.959 -> 0.929 and 0.955 -> 0.928, mostlyai-qa mixed),
# so those keep 64 x 32 (3.5x wider than the row). Wider rows keep SDV's 128 x 32: demo (43 values) and SUPPORT2
# (112) gained nothing from 256 x 64, and the lab table (1,092 values) must stay under a minute.
AUTO_NETWORK = ((32, 10_000, 256, 64), (32, 0, 64, 32), (math.inf, 0, 128, 32))
# The run-time records the UI's estimate learns from (services/entry/run_times.json) were made with networks of at
# most 128 hidden units; 256 x 64 costs 6.2-7.6x their fit CPU per training row and epoch (NAFLD1, width.md).
RECORDED_HIDDEN, WIDE_HIDDEN, WIDE_FIT_COST = 128, 256, 7.0
SAMPLE_PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}  # what sample_precision names
# categorical columns with at most this many levels get their sampled shares calibrated: 20,000 drawn rows give
# each level of such a column enough rows for a steady share; wider columns' rare levels would get noise instead
CALIBRATED_LEVELS = 50
MAX_LOGIT_SHIFT = 2.0  # the most a level's output bias moves in calibration (a level the model all but lost)
CALIBRATION_SEED_OFFSET = 7_331  # the calibration draw's seed apart from the sampling seeds callers pass (seed + 1)
MIN_IMPROVEMENT = 1e-3  # relative validation-loss gain that resets the early-stopping patience
NOT_COVERED_BY_EPSILON = (
    "Not covered by epsilon: the codec's statistics (per-column ranges, decimals, kept category levels "
    "and their counts, the rare-level pool), the cross-column rules the real table keeps and their lookup "
    "tables (which code goes with which label, unit or planned day), and this backend's encoding statistics "
    "(the quantile grid of every numeric column, the list of category levels) are computed from the training "
    "data without differential privacy. Only the neural network's weights are trained with DP-SGD."
)


def auto_network(width: int, train_rows: int) -> tuple[int, int]:
    """The default (hidden units, latent dimension) for a row of `width` encoded values and `train_rows` rows."""
    return next(
        (hidden, latent) for widest, fewest, hidden, latent in AUTO_NETWORK if width <= widest and train_rows >= fewest
    )


class _VAEGenerator(CodecGenerator):
    """What tvae and tvae.dp share: the encoding, the network, sampling and save/load; each trains it its own way."""

    Params = VAEParams
    params: VAEParams

    def __init__(self, **params: object) -> None:
        super().__init__(**params)
        self.encoding: TableEncoding | None = None
        self.model: TabularVAE | None = None
        self.train_rows = 0  # rows the network was fitted on: AUTO_NETWORK reads it

    # -- fitting ----------------------------------------------------------------------------------
    def _codec_options(self) -> dict:
        return {"max_levels": self.params.max_levels}

    def _fit_encoded(self, encoded: pd.DataFrame, *, seed: int, progress: ProgressCallback) -> FitResult:
        if len(encoded) < 2:
            raise BackendError(f"{self.name} needs at least 2 training rows; got {len(encoded)}.")
        kinds = self._fitted_codec().model_columns()
        self.train_rows = len(encoded)
        self.encoding = TableEncoding.fit(encoded, kinds, n_quantiles=self.params.n_quantiles, seed=seed)
        scores, codes = self.encoding.to_tensors(encoded[list(kinds)], seed=seed)
        device = self._device()
        scores, codes = scores.to(device), codes.to(device)  # once: training and calibration both read them
        # a thread count taken from the load average would make the same seed train other weights on a
        # busier moment (threads change the order of floating-point sums): training ignores the load
        threads = threads_for(self._batch_rows(len(encoded)) * self._hidden_units(), idle_only=False)
        with _torch_threads(threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.model = self._new_model().to(device)
            result = self._train(scores, codes, seed=seed, progress=progress)
            self.model.eval()
            self._calibrate_marginals(codes, seed)
        result.details["threads"] = threads
        result.details["sample_precision"] = str(self._sample_precision(device)).removeprefix("torch.")
        return result

    def _calibrate_marginals(self, codes: torch.Tensor, seed: int) -> None:
        """Bring what the trained model samples onto the training marginals, from calibration_rows rows it draws
        the way sampling does (0: nothing changes): each numeric column's quantile grid is composed with the
        model's own score distribution (TableEncoding.calibrated), and the output biases of each categorical
        column of at most CALIBRATED_LEVELS levels shift by log(training share / sampled share), so its levels
        come out in their training shares while the rows keep which levels go together."""
        assert self.model is not None and self.encoding is not None
        rows = self.params.calibration_rows
        if not rows:
            return
        model, device = self.model, self.model.offsets.device
        generator = torch.Generator(device=device).manual_seed(seed + CALIBRATION_SEED_OFFSET)
        with torch.no_grad():
            scores, drawn = model.sample(rows, generator, precision=self._sample_precision(device))
            for j, size in enumerate(self.encoding.category_sizes):
                if 2 <= size <= CALIBRATED_LEVELS:
                    start = model.n_numeric + int(model.offsets[j])
                    model.to_output.bias[start : start + size] += _log_share_ratio(codes[:, j], drawn[j], size)
        self.encoding = self.encoding.calibrated(scores.float().cpu().numpy())

    def _batch_rows(self, train_rows: int) -> int:
        """The batch size asked for, or by default one that gives every epoch AUTO_BATCH_STEPS updates
        within AUTO_BATCH_RANGE: small tables get more (smaller) steps, large ones SDV's 500 rows."""
        wanted = self.params.batch_size
        if wanted is None:
            low, high = AUTO_BATCH_RANGE
            wanted = min(max(train_rows // AUTO_BATCH_STEPS, low), high)
        return max(1, min(int(wanted), train_rows))

    def _hidden_units(self) -> int:
        """The hidden width asked for, or by default the one AUTO_NETWORK gives the encoded row's width."""
        return self.params.hidden_size or self._auto_network()[0]

    def _latent_units(self) -> int:
        """The latent dimension asked for, or by default the one AUTO_NETWORK gives the encoded row's width."""
        return self.params.latent_dim or self._auto_network()[1]

    def _auto_network(self) -> tuple[int, int]:
        """The default (hidden units, latent dimension) for the encoded row's width and the training rows."""
        assert self.encoding is not None
        return auto_network(len(self.encoding.numeric) + sum(self.encoding.category_sizes), self.train_rows)

    @classmethod
    def relative_fit_cost(cls, params: Mapping[str, object], width: int, train_rows: int) -> float:
        """The fit's CPU per training row and epoch against the networks the run-time records were made with."""
        given = params.get("hidden_size")
        hidden = given if isinstance(given, int) else cls.Params().hidden_size or auto_network(width, train_rows)[0]
        return 1.0 if hidden <= RECORDED_HIDDEN else WIDE_FIT_COST * (hidden / WIDE_HIDDEN) ** 2

    def _new_model(self, hidden_size: int | None = None, latent_dim: int | None = None) -> TabularVAE:
        assert self.encoding is not None
        return TabularVAE(
            len(self.encoding.numeric),
            self.encoding.category_sizes,
            latent_dim=latent_dim or self._latent_units(),
            hidden_size=hidden_size or self._hidden_units(),
            hidden_layers=self.params.hidden_layers,
        )

    def _optimizer(self, model: torch.nn.Module) -> FusedAdam:
        return FusedAdam(model.parameters(), lr=self.params.learning_rate, weight_decay=self.params.weight_decay)

    def _loss(
        self, model: TabularVAE, scores: torch.Tensor, codes: torch.Tensor, inputs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean over rows of loss_factor x reconstruction NLL + KL."""
        mu, logvar, means, log_sigma, logits = model(model.one_hot_input(scores, codes) if inputs is None else inputs)
        rec = model.reconstruction(scores, codes, means, log_sigma, logits)
        return (self.params.loss_factor * rec + kl_divergence(mu, logvar)).mean()

    @abstractmethod
    def _train(self, scores: torch.Tensor, codes: torch.Tensor, *, seed: int, progress: ProgressCallback) -> FitResult:
        """Train self.model on the encoded training rows."""

    def _device(self) -> torch.device:
        wanted = self.params.device
        if wanted == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError(
                f"{self.name}: device '{wanted}' was asked for but no CUDA GPU is available; "
                "use device='auto' or 'cpu'."
            )
        return torch.device(wanted)

    # -- sampling ---------------------------------------------------------------------------------
    def _sample_encoded(self, n_rows: int, *, seed: int) -> pd.DataFrame:
        return self._sample_encoded_batch(n_rows, seed=seed).to_frame(self._fitted_codec().model_columns())

    def _draw_batch(self, n_rows: int, *, seed: int, helpers_idle: bool = False) -> Callable[[], EncodedBatch]:
        """Draw scores and codes from the model; the quantile inverse is left to the returned step."""
        model, encoding = self._fitted_model()
        device = model.offsets.device
        generator = torch.Generator(device=device).manual_seed(seed)
        # the codec's decoder thread and a file writer run beside the model, except before the first batch
        # is drawn: on 2 CPUs that draw otherwise ran alone on one (rows do not depend on threads)
        keep_free = 0 if helpers_idle else SAMPLING_HELPER_THREADS
        with _torch_threads(threads_for(n_rows * model.hidden_size, keep_free=keep_free)):
            scores, codes = model.sample(n_rows, generator, precision=self._sample_precision(device))
            positions = encoding.grid_positions(scores)  # torch's erf, under this thread's thread count
        return functools.partial(encoding.batch_at, positions, codes)

    def _sample_precision(self, device: torch.device) -> torch.dtype:
        """The decoder's precision when sampling: 'auto' is bfloat16 on a CPU with native bf16 dot
        products (4x the float32 matmul rate here, the same sdmetrics quality on SUPPORT2), else float32."""
        wanted = self.params.sample_precision
        if wanted == "auto":
            wanted = "bfloat16" if device.type == "cpu" and cpu_has_native_bf16() else "float32"
        return SAMPLE_PRECISIONS[wanted]

    def _fitted_model(self) -> tuple[TabularVAE, TableEncoding]:
        if self.model is None or self.encoding is None:
            self._fitted_codec()
            raise BackendError(f"Backend '{self.name}' has a codec but no model; fit or load it again.")
        return self.model, self.encoding

    # -- persistence ------------------------------------------------------------------------------
    def _save_model(self, directory: Path) -> None:
        from safetensors.torch import save_file

        model, encoding = self._fitted_model()
        tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        tensors[QUANTILES_KEY] = torch.from_numpy(np.ascontiguousarray(encoding.quantiles))
        save_file(tensors, str(directory / TENSORS_FILE))
        info = {
            "format": FORMAT,
            "sha256": sha256_file(directory / TENSORS_FILE),
            "hidden_size": model.hidden_size,
            "latent_dim": model.latent_dim,
            "encoding": encoding.to_json_dict(),
        }
        (directory / INFO_FILE).write_text(json.dumps(info))

    def _load_model(self, directory: Path) -> None:
        from safetensors.torch import load_file

        try:
            info = json.loads((directory / INFO_FILE).read_text())
            if info.get("format") != FORMAT:
                raise ValueError(f"format {info.get('format')!r} is not {FORMAT!r}")
            if sha256_file(directory / TENSORS_FILE) != info["sha256"]:
                raise ValueError(f"{TENSORS_FILE} does not match the checksum in {INFO_FILE}")
            tensors = load_file(str(directory / TENSORS_FILE))
            self.encoding = TableEncoding.from_parts(info["encoding"], tensors.pop(QUANTILES_KEY).numpy())
            model = self._new_model(info.get("hidden_size"), info.get("latent_dim"))
            model.load_state_dict({k.removeprefix("model."): v for k, v in tensors.items()})
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, AttributeError) as exc:
            raise ModelFileError(
                f"The {self.name} model in {directory} is unreadable or was changed ({exc}); fit the backend again."
            ) from exc
        self.model = model.to(self._device()).eval()


class TVAEGenerator(_VAEGenerator):
    """In-house tabular VAE on quantile-normal scores and one-hot categories (PyTorch)."""

    name = "tvae"
    capabilities = Capabilities(
        description="In-house PyTorch tabular variational autoencoder: fast, keeps minority categories, "
        "the default backend.",
        license="Apache-2.0",
        family="torch",
        gpu=True,
    )

    Params = TVAEParams
    params: TVAEParams

    def _train(self, scores: torch.Tensor, codes: torch.Tensor, *, seed: int, progress: ProgressCallback) -> FitResult:
        """Mini-batch Adam with early stopping on a held-back validation share; keeps the best weights."""
        assert self.model is not None
        model, optimizer = self.model, self._optimizer(self.model)
        train, valid = _split(len(scores), self.params.validation_share, seed, scores.device)
        epochs, patience = self._epochs(len(train)), self.params.patience
        batch = self._batch_rows(len(train))
        generator = torch.Generator(device=scores.device).manual_seed(seed)
        losses, valid_losses, best, best_state, waited, start = [], [], math.inf, None, 0, time.perf_counter()
        inputs = model.one_hot_input(scores, codes) if scores.shape[0] * model.input_width <= ONE_HOT_ONCE else None
        valid_scores, valid_codes = scores[valid], codes[valid]
        for epoch in range(1, epochs + 1):
            model.train()
            order = train[torch.randperm(len(train), generator=generator, device=scores.device)]
            # one gather per epoch, then each step trains on a view: the same rows in the same order as indexing
            # every batch, with two fewer ops per step (small tables run thousands of tiny steps)
            epoch_scores, epoch_codes = scores[order], codes[order]
            epoch_inputs = None if inputs is None else inputs[order]
            total = torch.zeros((), device=scores.device)
            for first in range(0, len(order), batch):
                part = slice(first, first + batch)
                optimizer.zero_grad(set_to_none=True)
                step_inputs = None if epoch_inputs is None else epoch_inputs[part]
                loss = self._loss(model, epoch_scores[part], epoch_codes[part], step_inputs)
                loss.backward()
                optimizer.step()
                total += loss.detach() * (min(first + batch, len(order)) - first)
            losses.append(float(total) / len(order))
            message = ""
            if len(valid):
                valid_losses.append(self._validation_loss(valid_scores, valid_codes))
                message = f"validation loss {valid_losses[-1]:.4f}"
            progress(
                Progress(
                    self.name,
                    "fit",
                    epoch,
                    epochs,
                    loss=losses[-1],
                    seconds=time.perf_counter() - start,
                    message=message,
                )
            )
            if not len(valid) or patience <= 0:
                continue
            if valid_losses[-1] < best - MIN_IMPROVEMENT * abs(best if math.isfinite(best) else 1.0):
                best, best_state, waited = valid_losses[-1], {k: v.clone() for k, v in model.state_dict().items()}, 0
            else:
                waited += 1
                if waited >= patience:
                    break
        if best_state is not None:
            model.load_state_dict(best_state)
        return FitResult(
            seconds=0.0,
            epochs=len(losses),
            losses=losses,
            details={
                "batch_size": batch,
                "hidden_size": self._hidden_units(),
                "latent_dim": self._latent_units(),
                "validation_losses": valid_losses,
                "epochs_planned": epochs,
                "stopped_early": len(losses) < epochs,
                "best_validation_loss": best if math.isfinite(best) else None,
                "device": str(scores.device),
                "encoding": "quantile-normal numeric scores, one-hot categories",
            },
        )

    def _epochs(self, train_rows: int) -> int:
        """`epochs`, or fewer when that many passes would show the network more rows than row_budget."""
        budget = self.params.row_budget
        return self.params.epochs if budget is None else max(1, min(self.params.epochs, budget // max(train_rows, 1)))

    @torch.no_grad()
    def _validation_loss(self, scores: torch.Tensor, codes: torch.Tensor) -> float:
        """Validation loss with the posterior mean (no sampling noise), so epochs compare fairly."""
        model = self.model
        model.eval()
        mu, logvar = model.to_latent(model.encoder(model.one_hot_input(scores, codes))).chunk(2, dim=1)
        means, log_sigma, logits = model.decode(mu)
        rec = model.reconstruction(scores, codes, means, log_sigma, logits)
        return float((self.params.loss_factor * rec + kl_divergence(mu, logvar)).mean())


class DPTVAEGenerator(_VAEGenerator):
    """The same VAE trained with DP-SGD (Opacus) to a target (epsilon, delta)."""

    name = "tvae.dp"
    capabilities = Capabilities(
        description="In-house tabular VAE trained with differential privacy (DP-SGD via Opacus) to a "
        "target epsilon; the codec's statistics are not covered by epsilon.",
        license="Apache-2.0",
        family="torch",
        dp=True,
        gpu=True,
    )

    Params = DPTVAEParams
    params: DPTVAEParams

    def _optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            model.parameters(), lr=self.params.learning_rate, weight_decay=self.params.weight_decay
        )  # Opacus wraps a torch optimizer

    def _train(self, scores: torch.Tensor, codes: torch.Tensor, *, seed: int, progress: ProgressCallback) -> FitResult:
        """DP-SGD on every training row for exactly `epochs` epochs (no validation: it would read private rows)."""
        from opacus import PrivacyEngine

        n, epochs = len(scores), self.params.epochs
        delta = self.params.delta if self.params.delta is not None else 1.0 / n**2
        loader = torch.utils.data.DataLoader(
            torch.utils.data.TensorDataset(scores, codes), batch_size=self._batch_rows(n)
        )
        noise = torch.Generator(device=scores.device).manual_seed(seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Opacus warns that secure_mode is off: it is, for seeded runs
            engine = PrivacyEngine(accountant="rdp")
            private_model, optimizer, private_loader = engine.make_private_with_epsilon(
                module=self.model,
                optimizer=self._optimizer(self.model),
                data_loader=loader,
                target_epsilon=self.params.epsilon,
                target_delta=delta,
                epochs=epochs,
                max_grad_norm=self.params.max_grad_norm,
                noise_generator=noise,
            )
            losses = self._dp_epochs(private_model, optimizer, private_loader, epochs, progress)
            spent = float(engine.accountant.get_epsilon(delta))
        self._unwrap(private_model)
        return FitResult(
            seconds=0.0,
            epochs=epochs,
            losses=losses,
            epsilon=spent,
            delta=delta,
            details={
                "target_epsilon": self.params.epsilon,
                "noise_multiplier": float(optimizer.noise_multiplier),
                "max_grad_norm": self.params.max_grad_norm,
                "accountant": "rdp",
                "sample_rate": float(private_loader.sample_rate) if hasattr(private_loader, "sample_rate") else None,
                "privacy_unit": "one training row",
                "not_covered_by_epsilon": NOT_COVERED_BY_EPSILON,
                "device": str(scores.device),
                "encoding": "quantile-normal numeric scores, one-hot categories",
            },
        )

    def _dp_epochs(self, private_model, optimizer, loader, epochs: int, progress: ProgressCallback) -> list[float]:
        losses, start = [], time.perf_counter()
        model = self.model
        for epoch in range(1, epochs + 1):
            private_model.train()
            total, rows = 0.0, 0
            for scores, codes in loader:
                if len(scores) == 0:
                    continue
                optimizer.zero_grad(set_to_none=True)
                mu, logvar, means, log_sigma, logits = private_model(model.one_hot_input(scores, codes))
                rec = model.reconstruction(scores, codes, means, log_sigma, logits)
                loss = (self.params.loss_factor * rec + kl_divergence(mu, logvar)).mean()
                loss.backward()
                optimizer.step()
                total, rows = total + float(loss.detach()) * len(scores), rows + len(scores)
            losses.append(total / max(rows, 1))
            progress(Progress(self.name, "fit", epoch, epochs, loss=losses[-1], seconds=time.perf_counter() - start))
        return losses

    def _unwrap(self, private_model) -> None:
        """Keep a plain TabularVAE (Opacus hooks removed) for sampling and saving."""
        with contextlib.suppress(Exception):
            private_model.remove_hooks()
        plain = self._new_model().to(next(self.model.parameters()).device)
        plain.load_state_dict({k.removeprefix("_module."): v for k, v in private_model.state_dict().items()})
        self.model = plain


def _split(n: int, share: float, seed: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded train/validation row indices; no validation rows when share is 0 or n is tiny."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    n_valid = int(round(share * n)) if n >= 20 else 0
    return order[n_valid:], order[:n_valid]


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bfloat16 dot products in hardware (AVX512-BF16 or AMX); elsewhere torch
    emulates bf16 and it is slower than float32."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check() for check in checks if check is not None)


def cpu_threads() -> int:
    """CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _log_share_ratio(real: torch.Tensor, drawn: torch.Tensor, size: int) -> torch.Tensor:
    """log(training share / sampled share) of each level (one pseudo-row each, so an unseen level stays finite),
    within +-MAX_LOGIT_SHIFT."""
    counts = [torch.bincount(c.long(), minlength=size).double() + 1 for c in (real, drawn)]
    ratio = (counts[0] / counts[0].sum()).log() - (counts[1] / counts[1].sum()).log()
    return ratio.clamp(-MAX_LOGIT_SHIFT, MAX_LOGIT_SHIFT).float()


def threads_for(work_per_step: int, *, idle_only: bool = True, keep_free: int = 0) -> int:
    """Intra-op threads: one per WORK_PER_THREAD of work in a step, at most the CPUs (the idle ones)
    less keep_free (CPUs this process's own other threads keep busy).

    Intra-op threads wait on each other at every op, so on CPUs already busy with other processes
    two threads run several times slower than one (measured here: 3-5x, sampling and training).
    With idle_only, threads go only to CPUs the 1-minute load average leaves idle.
    """
    usable = cpu_threads() - keep_free
    if idle_only and hasattr(os, "getloadavg"):
        usable -= int(os.getloadavg()[0])
    return max(1, min(usable, work_per_step // WORK_PER_THREAD))


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    """Set the intra-op threads for this fit or sample, then restore the caller's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
