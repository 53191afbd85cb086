"""The variational autoencoder: MLP encoder and decoder, its loss, and batched sampling."""

from __future__ import annotations

import torch
from torch import nn

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -4.6, 0.0
SAMPLE_CHUNK = 8192  # rows decoded at once when sampling: the activations stay in cache


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear + ReLU layers through the given widths (Opacus supports both)."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers)


class TabularVAE(nn.Module):
    """Encoder q(z|x) and decoder p(x|z): Gaussian numeric scores, softmax per categorical column."""

    def __init__(
        self, n_numeric: int, category_sizes: list[int], *, latent_dim: int, hidden_size: int, hidden_layers: int
    ) -> None:
        super().__init__()
        self.n_numeric = n_numeric
        self.register_buffer("category_sizes", torch.tensor(category_sizes, dtype=torch.int64), persistent=False)
        one_hot_width = int(sum(category_sizes))
        self.input_width = n_numeric + one_hot_width
        hidden = [hidden_size] * hidden_layers
        self.encoder = mlp([self.input_width] + hidden)
        self.to_latent = nn.Linear(hidden[-1] if hidden else self.input_width, 2 * latent_dim)
        self.decoder = mlp([latent_dim] + hidden)
        self.to_output = nn.Linear(hidden[-1] if hidden else latent_dim, n_numeric + one_hot_width)
        self.scale = nn.Linear(1, n_numeric)  # per-column log-sigma; a Linear on a constant so Opacus sees it
        self.latent_dim, self.hidden_size = latent_dim, hidden_size
        offsets = torch.zeros(len(category_sizes), dtype=torch.int64)
        if category_sizes:
            offsets[1:] = torch.cumsum(torch.tensor(category_sizes[:-1]), 0)
        self.register_buffer("offsets", offsets, persistent=False)
        self.groups = len(size_groups(category_sizes))
        for g, columns in enumerate(size_groups(category_sizes)):
            self._register_group(g, columns, category_sizes, offsets)

    def _register_group(self, g: int, columns: list[int], sizes: list[int], offsets: torch.Tensor) -> None:
        """Buffers that lay one group's logits out as (levels, columns), the widest column's level count;
        shorter columns' padding is masked. Reductions then run over whole rows of values at once."""
        width = max(sizes[j] for j in columns)
        position = torch.arange(width)
        size = torch.tensor([sizes[j] for j in columns], dtype=torch.int64)
        valid = position[:, None] < size[None, :]
        index = torch.where(valid, offsets[columns][None, :] + position[:, None], 0)
        for name, value in (
            ("columns", torch.tensor(columns)),
            ("index", index.flatten()),
            ("valid", valid),
            ("last", size - 1),
        ):
            self.register_buffer(f"group{g}_{name}", value, persistent=False)

    def _group(self, g: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return tuple(getattr(self, f"group{g}_{name}") for name in ("columns", "index", "valid", "last"))

    def _padded_logits(self, logits: torch.Tensor, g: int) -> torch.Tensor:
        """One group's logits as (rows, levels, columns); -inf where a column has fewer levels."""
        _, index, valid, _ = self._group(g)
        return logits.index_select(1, index).view(-1, *valid.shape).masked_fill(~valid, -torch.inf)

    def one_hot_input(self, scores: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Numeric scores next to the one-hot of every categorical column, built for one batch."""
        one_hot = torch.zeros(codes.shape[0], self.input_width - self.n_numeric, device=codes.device)
        one_hot.scatter_(1, codes + self.offsets, 1.0)
        return torch.cat([scores, one_hot], dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Posterior mean and log-variance, then the decoded batch from a reparameterised draw."""
        mu, logvar = self.to_latent(self.encoder(x)).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return (mu, logvar) + self.decode(z)

    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Numeric means, numeric log-sigmas (clamped) and categorical logits."""
        out = self.to_output(self.decoder(z))
        log_sigma = self.scale(torch.ones(z.shape[0], 1, device=z.device)).clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        return out[:, : self.n_numeric], log_sigma, out[:, self.n_numeric :]

    def reconstruction(
        self,
        scores: torch.Tensor,
        codes: torch.Tensor,
        means: torch.Tensor,
        log_sigma: torch.Tensor,
        logits: torch.Tensor,
    ) -> torch.Tensor:
        """Per-row negative log-likelihood: Gaussian on scores + cross-entropy per categorical column."""
        numeric = (0.5 * ((scores - means) * torch.exp(-log_sigma)) ** 2 + log_sigma).sum(dim=1)
        if codes.shape[1] == 0:
            return numeric
        normaliser = sum(torch.logsumexp(self._padded_logits(logits, g), dim=1).sum(dim=1) for g in range(self.groups))
        return numeric + normaliser - logits.gather(1, codes + self.offsets).sum(dim=1)

    @torch.no_grad()
    def sample(
        self, n_rows: int, generator: torch.Generator, *, precision: torch.dtype = torch.float32
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores (numeric columns x rows) and level codes (categorical columns x rows) drawn from the prior.

        Column-major, so every step is one vectorised pass over a column's rows, and decoded
        SAMPLE_CHUNK rows at a time so the activations stay in cache. The decoder's matmuls run in
        `precision` (bfloat16 is 4x faster on CPUs with native bf16 dot products); the noise and
        category draws always in float32. Numeric scores get the learned per-column noise; categories
        are drawn from the softmax (inverse CDF, one uniform per value), never argmax, so minority
        levels keep their share.
        """
        device = self.offsets.device
        layers = [(m.weight.to(precision), m.bias.to(precision)) for m in self.decoder if isinstance(m, nn.Linear)]
        layers.append(tuple(part.to(precision) for part in self._sampling_head()))
        sigma = torch.exp(self.scale(torch.ones(1, 1, device=device)).clamp(LOG_SIGMA_MIN, LOG_SIGMA_MAX)).T
        scores = torch.empty(self.n_numeric, n_rows, device=device)
        grouped = torch.empty(len(self.offsets), n_rows, dtype=code_dtype(self.category_sizes), device=device)
        for first in range(0, n_rows, SAMPLE_CHUNK):
            rows = slice(first, min(n_rows, first + SAMPLE_CHUNK))
            out = self._decode_chunk(layers, rows.stop - rows.start, generator)
            noise = torch.randn(self.n_numeric, out.shape[1], generator=generator, device=device)
            torch.addcmul(out[: self.n_numeric], noise, sigma, out=scores[:, rows])
            self._draw_categories(out[self.n_numeric :], grouped[:, rows], generator)
        group_order = torch.cat([self._group(g)[0] for g in range(self.groups)]) if self.groups else None
        if group_order is None or torch.equal(group_order, torch.arange(len(group_order), device=device)):
            return scores, grouped
        return scores, grouped.index_select(0, torch.argsort(group_order))  # back to column order

    def _sampling_head(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The output layer's rows laid out for drawing: numeric means, then per level-count group its
        logits level-major (levels x columns, so the matmul yields the padded block; padding has bias
        -inf), except two-level groups, which get one row per column, l1 - l0, the log-odds of level 1.
        One-level groups get no rows (their code is always 0)."""
        weight, bias = self.to_output.weight, self.to_output.bias
        weights, biases = [weight[: self.n_numeric]], [bias[: self.n_numeric]]
        weight, bias = weight[self.n_numeric :], bias[self.n_numeric :]  # the groups index the logits
        for g in range(self.groups):
            _, index, valid, _ = self._group(g)
            if valid.shape[0] == 2:
                low, high = index.view(2, -1)
                weights.append((weight[high] - weight[low]) * valid[1][:, None])
                biases.append((bias[high] - bias[low]).masked_fill(~valid[1], -torch.inf))
            elif valid.shape[0] > 2:
                weights.append(weight[index] * valid.flatten()[:, None])
                biases.append(bias[index].masked_fill(~valid.flatten(), -torch.inf))
        return torch.cat(weights), torch.cat(biases)

    def _decode_chunk(
        self, layers: list[tuple[torch.Tensor, torch.Tensor]], n_rows: int, generator: torch.Generator
    ) -> torch.Tensor:
        """The decoder's output for n_rows latent draws, one row per output value (width x rows)."""
        weight, bias = layers[0]
        hidden = torch.randn(n_rows, self.latent_dim, generator=generator, device=weight.device).to(weight.dtype)
        for weight, bias in layers[:-1]:
            hidden = torch.addmm(bias, hidden, weight.T).relu_()
        weight, bias = layers[-1]
        return torch.addmm(bias[:, None], weight, hidden.T)

    def _draw_categories(self, logits: torch.Tensor, codes: torch.Tensor, generator: torch.Generator) -> None:
        """Level codes drawn from each column's softmax (the sampling head's layout), one uniform per value,
        into codes laid out group after group (a block of rows per group: plain copies, no scatter)."""
        device, n_rows, first, at = logits.device, logits.shape[1], 0, 0
        for g in range(self.groups):
            _, _, valid, last = self._group(g)
            width, n_columns = valid.shape
            block, at = codes[at : at + n_columns], at + n_columns
            if width < 2:
                block.fill_(0)
                continue
            uniform = torch.rand(n_columns, n_rows, generator=generator, device=device)
            if width == 2:  # level 1 with probability sigmoid(l1 - l0)
                log_odds = logits[first : first + n_columns]
                drawn = uniform < torch.sigmoid(log_odds.float())
                first += n_columns
            else:  # inverse CDF of the softmax
                padded = logits[first : first + width * n_columns].view(width, n_columns, n_rows).float()
                cdf = padded.sub_(padded.amax(dim=0)).exp_().cumsum_(dim=0)
                drawn = torch.minimum((cdf < uniform.mul_(cdf[-1])).sum(dim=0), last[:, None])
                first += width * n_columns
            block.copy_(drawn)


def code_dtype(category_sizes: torch.Tensor) -> torch.dtype:
    """The narrowest integer type that holds every level code (int16 for the codec's <= 502 levels)."""
    widest = int(category_sizes.max()) if len(category_sizes) else 0
    return torch.int16 if widest <= torch.iinfo(torch.int16).max else torch.int32


def size_groups(sizes: list[int]) -> list[list[int]]:
    """Categorical columns grouped by level count rounded up to a power of two, so padding a group to
    its widest column at most doubles its width (one dense op per group instead of one per column)."""
    groups: dict[int, list[int]] = {}
    for j, size in enumerate(sizes):
        groups.setdefault(max(1, size - 1).bit_length(), []).append(j)
    return [groups[key] for key in sorted(groups)]


class FusedAdam:
    """torch.optim.Adam (L2 weight decay) as one fused kernel call per step, without torch.optim's wrapper.

    torch.optim's step wrapper imports torch._dynamo on first use, 1-4 s per process here: more than
    the whole fit of a small table. The update itself is torch's own fused Adam kernel.
    """

    def __init__(
        self,
        params,
        *,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = [p for p in params if p.requires_grad]
        self.exp_avgs = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in self.params]
        self.steps = [torch.zeros((), dtype=torch.float32, device=p.device) for p in self.params]
        self.options = {"lr": lr, "beta1": betas[0], "beta2": betas[1], "weight_decay": weight_decay, "eps": eps}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Drop the gradients before the next backward pass."""
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One Adam update of every parameter that has a gradient."""
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        steps = [self.steps[i] for i in live]
        torch._foreach_add_(steps, 1)
        torch._fused_adam_(
            [self.params[i] for i in live],
            [self.params[i].grad for i in live],
            [self.exp_avgs[i] for i in live],
            [self.exp_avg_sqs[i] for i in live],
            [],
            steps,
            amsgrad=False,
            maximize=False,
            grad_scale=None,
            found_inf=None,
            **self.options,
        )


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-row KL(q(z|x) || N(0, I))."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
