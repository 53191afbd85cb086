"""The variational autoencoder: MLP encoder and decoder, its loss, and batched sampling."""
from __future__ import annotations

import torch
from torch import nn

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -4.6, 0.0


def mlp(sizes: list[int]) -> nn.Sequential:
    """Linear + ReLU layers through the given widths (Opacus supports both)."""
    layers: list[nn.Module] = []
    for width_in, width_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(width_in, width_out), nn.ReLU()]
    return nn.Sequential(*layers)


class TabularVAE(nn.Module):
    """Encoder q(z|x) and decoder p(x|z): Gaussian numeric scores, softmax per categorical column."""

    def __init__(self, n_numeric: int, category_sizes: list[int], *, latent_dim: int, hidden_size: int,
                 hidden_layers: int) -> None:
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
        self.latent_dim = latent_dim
        offsets = torch.zeros(len(category_sizes), dtype=torch.int64)
        if category_sizes:
            offsets[1:] = torch.cumsum(torch.tensor(category_sizes[:-1]), 0)
        self.register_buffer("offsets", offsets, persistent=False)
        segment = torch.repeat_interleave(torch.arange(len(category_sizes)), torch.tensor(category_sizes, dtype=torch.int64))
        self.register_buffer("segment", segment, persistent=False)

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
        return out[:, :self.n_numeric], log_sigma, out[:, self.n_numeric:]

    def reconstruction(self, scores: torch.Tensor, codes: torch.Tensor, means: torch.Tensor,
                       log_sigma: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Per-row negative log-likelihood: Gaussian on scores + cross-entropy per categorical column."""
        numeric = (0.5 * ((scores - means) * torch.exp(-log_sigma)) ** 2 + log_sigma).sum(dim=1)
        if codes.shape[1] == 0:
            return numeric
        return numeric + (self._segment_logsumexp(logits) - logits.gather(1, codes + self.offsets)).sum(dim=1)

    def _segment_logsumexp(self, logits: torch.Tensor) -> torch.Tensor:
        """log-sum-exp of each categorical column's logits, vectorised over columns."""
        index = self.segment.expand(logits.shape[0], -1)
        shift = torch.full((logits.shape[0], len(self.offsets)), -torch.inf, device=logits.device)
        shift = shift.scatter_reduce(1, index, logits.detach(), reduce="amax")
        sums = torch.zeros_like(shift).scatter_add(1, index, torch.exp(logits - shift.gather(1, index)))
        return shift + torch.log(sums)

    @torch.no_grad()
    def sample(self, n_rows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores and level codes for n_rows drawn from the prior; categories drawn, never argmax."""
        device = self.offsets.device
        z = torch.randn(n_rows, self.latent_dim, generator=generator, device=device)
        means, log_sigma, logits = self.decode(z)
        noise = torch.randn(means.shape, generator=generator, device=device)
        scores = means + noise * torch.exp(log_sigma)
        uniform = torch.rand(logits.shape, generator=generator, device=device).clamp_(1e-12, 1.0)
        perturbed = logits - torch.log(-torch.log(uniform))  # Gumbel-max: an exact softmax draw
        codes = torch.empty(n_rows, len(self.offsets), dtype=torch.int64, device=device)
        for j, (start, size) in enumerate(zip(self.offsets.tolist(), self.category_sizes.tolist())):
            codes[:, j] = perturbed[:, start:start + size].argmax(dim=1)
        return scores, codes


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-row KL(q(z|x) || N(0, I))."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=1)
