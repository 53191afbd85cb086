"""In-house PyTorch TVAE, the default backend (`tvae`), and its DP-SGD variant (`tvae.dp`).

Pipeline: the shared codec (backends/preprocessing.py) turns the real table into numeric floats
and categorical tokens (dates as days, missing values as indicator columns, rare levels grouped,
identifiers and PII removed). This package then
- encodes numeric columns to normal scores with a quantile grid fitted vectorised on a subsample,
  and categoricals to level codes, one-hot per mini-batch (encoding.py); a category column learns at
  most its `max_levels` (500) most frequent levels one-hot: the codec gives the rest its rare token,
  decoded by their training frequencies;
- trains an MLP variational autoencoder (2 hidden layers of 128 units and latent 32; when a row
  encodes to at most 32 values 256 units and latent 64 on 10,000 rows or more, else 64 units;
  loss factor 1):
  Gaussian likelihood on the scores with a learned sigma per column (clamped to [0.01, 1] as in
  TVAE), softmax cross-entropy per categorical column (one log-sum-exp per group of columns with
  similar level counts), KL to N(0, I) (model.py); mini-batches come straight from pre-encoded
  tensors, by default train rows / 50 in [128, 500] so small tables get enough updates per epoch;
  a large table trains fewer than `epochs` epochs, so the network sees at most `row_budget` rows;
  torch's fused Adam kernel is called directly (torch.optim's wrapper imports torch._dynamo, 1-4 s
  a process); early stopping on a held-back validation share keeps the best weights; progress is
  reported per epoch; training threads follow the CPU count and the work per step (never the load,
  so a seed gives the same weights); sampling threads the idle CPUs less the two stream threads;
- samples in batches from the prior, column-major and a cache-sized chunk at a time: the decoder's
  matmuls in bfloat16 where the CPU has native bf16 dot products (sample_precision="auto"; 4x the
  float32 rate here, the same quality), numeric scores with the learned per-column noise in
  float32; categories drawn from the softmax by inverse CDF (one uniform per value; two-level
  columns from one log-odds row of a re-laid output layer), never argmax, so minority levels keep
  their share. The quantile inverse (numpy, in place) and the codec's decode to Arrow run in a
  background thread one batch behind the model, and the file writer in another (services/writers.py);
  level codes stay integers to the end: category columns become Arrow dictionaries;
- saves the weights and quantile grids as safetensors and the rest as JSON, with the tensors'
  sha256 in the JSON: a changed or unreadable file raises ModelFileError. Nothing is pickled.

Seeded: the same seed gives the same model (fit) and the same rows (sample, at any thread count)
on the same machine and device. CUDA is used when available (device="auto").

Differential privacy (`tvae.dp`): the network is trained with DP-SGD (Opacus: Poisson sampling,
per-row clipping to max_grad_norm, Gaussian noise set by the RDP accountant for the target
epsilon at delta = 1/n^2 unless given) for exactly `epochs` epochs, without validation-based early
stopping (that would read private rows outside the mechanism). FitResult carries the epsilon spent
and delta. Choice made here: the codec's statistics (ranges, decimals, kept category levels and
counts) and this package's encoding statistics (quantile grids, level lists) are NOT computed with
DP; they are declared in FitResult.details["not_covered_by_epsilon"] so the crate states it. The
codec never stores levels seen fewer than the schema's `min_level_rows` times, which limits but does not bound the
leak. The DP noise comes from a seeded torch generator (Opacus secure_mode off) so a run can be
repeated; that generator is not cryptographically secure, as Opacus warns.
"""

from fairsynth.backends.tvae.generator import DPTVAEGenerator, TVAEGenerator

__all__ = ["TVAEGenerator", "DPTVAEGenerator"]
