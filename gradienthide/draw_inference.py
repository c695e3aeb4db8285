"""Inferring which public images a GradientHide client drew, from its upload alone.

A GradientHide upload is the private steps' change plus `steps` SGD steps on public batches of
`batch` images drawn from a pool the server knows, with labels it knows. To first order at
the global model w0, with per-example gradients g_i of the pool and c_i the number of times
image i was drawn,

    -upload ~= lr_private * g_private + (lr_public / batch) * sum_i c_i g_i(w0),

so the draws are the sparse non-negative coefficients of a regression of -upload on the
pool's (scaled) per-example gradients, the private part left as an unexplained residual.
The estimation is a chain of steps, each usable alone:

- `regress_draws` (first order): non-negative least squares (scipy's NNLS) on the pool's
  gradients at w0, then the draws with the largest coefficients, `steps * batch` in all, as
  the protocol's `draws` rule allows: at most `steps` per image (independent), once each
  (disjoint), or `batch` images each drawn `steps` times (repeated, coefficients near `steps`).
- `label_histogram` (a label prior): the last layer's bias update is minus lr times a mean of
  (softmax - onehot) per step, so it fixes how many drawn images carry each label, up to the
  private batch's share (its labels known or recovered, its softmax taken as the pool's
  mean). `regress_draws` then fills each label's quota with that label's best coefficients.
- `refine_draws` (exact steps): with an estimate of the private images, the client's actual
  trajectory is simulated: gradients taken where the client took them (after the private
  steps, then after each public step) and the regression redone with one coefficient per
  (step, image), so each step gets its own batch; the label prior's quotas and the `draws`
  rule still decide which images are drawn.

Per-example gradients come from torch.func (vmap of grad), a chunk of the pool at a time.
When the pool's gradients would exceed `memory_budget_mb`, each is compressed by a seeded
CountSketch (a random sign and bucket per parameter), which keeps inner products in
expectation, so the regression runs on sketched gradients of bounded size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import grad, vmap

BYTES_PER_FLOAT = 4


@dataclass
class PublicSetting:
    """What the attacker knows of the public stage (GradientHide's published protocol)."""

    images: torch.Tensor  # the pool, [P, C, H, W] in [0, 1]
    labels: torch.Tensor  # the public labeler's labels, [P]
    steps: int
    batch: int
    lr: float
    draws: str = "independent"  # how the steps' batches relate (GradientHide's `draws`)

    @property
    def per_image(self) -> int:
        """How often a drawn image is drawn in a round: `steps` when one batch serves every
        step, else once per distinct draw (independent draws may repeat; counted one by one)."""
        return self.steps if self.draws == "repeated" else 1

    @property
    def distinct(self) -> int:
        """How many draws to choose: one per drawn image with repeated batches, else all."""
        return self.batch if self.draws == "repeated" else self.steps * self.batch

    @property
    def most_per_image(self) -> int:
        return self.steps if self.draws == "independent" else 1


class GradientSketch:
    """Flattens a parameter dict's gradients and, past a memory budget, sketches them."""

    def __init__(self, params: dict[str, torch.Tensor], rows: int, memory_budget_mb: float, seed: int):
        self.names = list(params)
        self.size = sum(p.numel() for p in params.values())
        budget_floats = memory_budget_mb * 2**20 / BYTES_PER_FLOAT
        self.width = self.size if rows * self.size <= budget_floats else max(64, int(budget_floats // rows))
        self.sketched = self.width < self.size
        if self.sketched:
            generator = torch.Generator().manual_seed(seed)
            device = next(iter(params.values())).device
            self.bucket = torch.randint(0, self.width, (self.size,), generator=generator).to(device)
            self.sign = (torch.randint(0, 2, (self.size,), generator=generator) * 2 - 1).float().to(device)

    def __call__(self, gradients: dict[str, torch.Tensor]) -> torch.Tensor:
        """[n, width] from per-name tensors of shape [n, *param_shape]."""
        flat = torch.cat([gradients[name].reshape(gradients[name].shape[0], -1) for name in self.names], 1)
        if not self.sketched:
            return flat
        sketched = torch.zeros(flat.shape[0], self.width, device=flat.device, dtype=flat.dtype)
        return sketched.index_add_(1, self.bucket, flat * self.sign)


def pool_gradients(task_loss, params, images, labels, sketch: GradientSketch, chunk: int) -> torch.Tensor:
    """Per-example gradients of the loss at `params`, [P, sketch.width], a chunk at a time."""

    def one_loss(p, x, y):
        return task_loss(p, x.unsqueeze(0), y.unsqueeze(0))

    per_example = vmap(grad(one_loss), in_dims=(None, 0, 0))
    rows = []
    for start in range(0, len(labels), chunk):
        with torch.no_grad():
            rows.append(sketch(per_example(params, images[start : start + chunk], labels[start : start + chunk])))
    return torch.cat(rows)


def nonnegative_coefficients(atoms: torch.Tensor, target: torch.Tensor, max_iterations: int = 2000) -> np.ndarray:
    """argmin_{c >= 0} ||atoms^T c - target|| for atoms [K, width], target [width] (scipy NNLS)."""
    from scipy.optimize import nnls

    matrix = atoms.double().T.cpu().numpy()
    coefficients, _ = nnls(matrix, target.double().cpu().numpy(), maxiter=max_iterations)
    return coefficients


def choose_draws(coefficients: np.ndarray, *, total: int, most_per_image: int,
                 labels: np.ndarray | None = None, quotas: np.ndarray | None = None) -> np.ndarray:
    """How many times each image was drawn: `total` draws, at most `most_per_image` each, the
    largest coefficients first (a coefficient of 1 is one draw); with `quotas`, each label's
    count is filled from that label's images first. Returns counts [P]."""
    counts = np.zeros(len(coefficients), dtype=np.int64)
    remaining = coefficients.astype(np.float64).copy()

    def take(candidates: np.ndarray, wanted: int) -> None:
        for _ in range(wanted):
            open_ = candidates[counts[candidates] < most_per_image]
            if len(open_) == 0:
                return
            best = open_[np.argmax(remaining[open_])]
            counts[best] += 1
            remaining[best] -= 1.0  # a second draw of the same image must be earned again

    if quotas is not None and labels is not None:
        for label, quota in enumerate(quotas):
            take(np.flatnonzero(labels == label), int(min(quota, total - counts.sum())))
    take(np.arange(len(coefficients)), int(total - counts.sum()))
    return counts


def counts_to_steps(counts: np.ndarray, coefficients: np.ndarray, steps: int, batch: int) -> torch.Tensor:
    """Spread drawn images over the steps, no image twice in one step: [steps, batch]."""
    order = np.argsort(-coefficients, kind="stable")
    per_step: list[list[int]] = [[] for _ in range(steps)]
    step = 0
    for image in order:
        for _ in range(int(counts[image])):
            # the next step with room that does not hold this image yet
            for offset in range(steps):
                candidate = (step + offset) % steps
                if len(per_step[candidate]) < batch and image not in per_step[candidate]:
                    per_step[candidate].append(int(image))
                    step = (candidate + 1) % steps
                    break
    return torch.tensor([row + [row[-1] if row else 0] * (batch - len(row)) for row in per_step], dtype=torch.long)


def label_histogram(*, bias_update: torch.Tensor, pool_probabilities: torch.Tensor, private_labels: torch.Tensor,
                    private_lr: float, private_steps: int, setting: PublicSetting) -> np.ndarray:
    """Expected number of drawn images per label, from the last layer's bias update (with
    repeated batches, of the one batch's images).

    First order, per class k: -bias_update_k = private_lr * sum_s mean_private_s(p_k - [y = k])
    + (lr / batch) * sum_drawn (p_ik - [y_i = k]); the private softmax is taken as the pool's
    mean, the drawn images' softmax likewise (steps * batch of them)."""
    classes = pool_probabilities.shape[1]
    mean_probability = pool_probabilities.mean(0)
    private_share = torch.bincount(private_labels.long(), minlength=classes).float() / max(1, len(private_labels))
    private_term = private_lr * private_steps * (mean_probability - private_share)
    drawn = setting.steps * setting.batch
    public_term = -bias_update.float().cpu() - private_term
    counts = drawn * mean_probability - (setting.batch / setting.lr) * public_term
    counts = counts.clamp(min=0)
    # the counts sum to the distinct draws (a repeated batch's images count once): rescale,
    # then round so that they do
    drawn = setting.distinct
    counts = counts * (drawn / counts.sum().clamp_min(1e-12))
    floors = counts.floor()
    short = int(drawn - floors.sum())
    order = torch.argsort(counts - floors, descending=True)
    floors[order[:short]] += 1
    return floors.long().numpy()


def regress_draws(*, target: torch.Tensor, atoms: torch.Tensor, setting: PublicSetting,
                  quotas: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """First-order draws: NNLS of the sketched -upload on the pool's scaled gradients at w0.
    Returns [steps, batch] pool positions and the coefficients."""
    coefficients = nonnegative_coefficients(atoms * (setting.lr / setting.batch), target) / setting.per_image
    counts = choose_draws(coefficients, total=setting.distinct, most_per_image=setting.most_per_image,
                          labels=setting.labels.cpu().numpy(), quotas=quotas)
    if setting.draws == "repeated":
        return repeated_batch(np.flatnonzero(counts), coefficients, setting), coefficients
    return counts_to_steps(counts, coefficients, setting.steps, setting.batch), coefficients


def repeated_batch(chosen: np.ndarray, scores: np.ndarray, setting: PublicSetting) -> torch.Tensor:
    """One batch (the best-scored first) used for every step: [steps, batch]."""
    row = chosen[np.argsort(-scores[chosen], kind="stable")][: setting.batch].tolist()
    row += [row[-1] if row else 0] * (setting.batch - len(row))
    return torch.tensor([row] * setting.steps, dtype=torch.long)


def refine_draws(*, target: torch.Tensor, step_atoms: list[torch.Tensor], setting: PublicSetting,
                 quotas: np.ndarray | None = None) -> torch.Tensor:
    """Draws per step from gradients taken where the client took them: step_atoms[s] holds the
    pool's gradients at the parameters before public step s; `target` is minus the public
    steps' change (the upload less the private steps' change). One NNLS over all (step, image)
    pairs; with `quotas` (the label prior), the images are chosen as `regress_draws` chooses
    them from their coefficients summed over the steps, then placed in the steps where their
    coefficients are largest. Without, each step's `batch` best images (disjoint draws: the best
    pairs first, no image in two steps; a repeated batch: the largest summed coefficients)."""
    atoms = torch.cat(step_atoms) * (setting.lr / setting.batch)
    coefficients = nonnegative_coefficients(atoms, target).reshape(setting.steps, -1)
    if quotas is not None:
        total = coefficients.sum(0) / setting.per_image
        counts = choose_draws(total, total=setting.distinct, most_per_image=setting.most_per_image,
                              labels=setting.labels.cpu().numpy(), quotas=quotas)
        if setting.draws == "repeated":
            return repeated_batch(np.flatnonzero(counts), total, setting)
        return place_in_steps(counts, coefficients, setting.batch)
    if setting.draws == "repeated":
        total = coefficients.sum(0)
        return repeated_batch(np.argsort(-total, kind="stable")[: setting.batch], total, setting)
    if setting.draws == "disjoint":
        return disjoint_steps(coefficients, setting.batch)
    return torch.tensor(np.argsort(-coefficients, axis=1, kind="stable")[:, : setting.batch].copy(), dtype=torch.long)


def place_in_steps(counts: np.ndarray, coefficients: np.ndarray, batch: int) -> torch.Tensor:
    """[steps, batch] holding each image counts[i] times, in the steps with its largest
    coefficients first ([steps, P]), never twice in one step."""
    steps = coefficients.shape[0]
    rows: list[list[int]] = [[] for _ in range(steps)]
    left = counts.copy()
    for flat in np.argsort(-coefficients, axis=None, kind="stable"):
        step, image = divmod(int(flat), coefficients.shape[1])
        if left[image] > 0 and len(rows[step]) < batch and image not in rows[step]:
            rows[step].append(image)
            left[image] -= 1
    return torch.tensor([row + [row[-1] if row else 0] * (batch - len(row)) for row in rows], dtype=torch.long)


def disjoint_steps(coefficients: np.ndarray, batch: int) -> torch.Tensor:
    """[steps, batch] from per-(step, image) coefficients [steps, P], no image in two steps:
    the largest coefficients first."""
    steps = coefficients.shape[0]
    rows: list[list[int]] = [[] for _ in range(steps)]
    used: set[int] = set()
    for flat in np.argsort(-coefficients, axis=None, kind="stable"):
        step, image = divmod(int(flat), coefficients.shape[1])
        if image not in used and len(rows[step]) < batch:
            rows[step].append(image)
            used.add(image)
            if len(used) == steps * batch:
                break
    return torch.tensor(rows, dtype=torch.long)


def draw_overlap(estimated: torch.Tensor, recorded: torch.Tensor) -> tuple[float, float]:
    """Precision and recall of estimated draws against the recorded ones, as multisets of
    pool positions (the order of the steps aside)."""
    estimated_counts = np.bincount(estimated.flatten().numpy())
    recorded_counts = np.bincount(recorded.flatten().numpy())
    size = max(len(estimated_counts), len(recorded_counts))
    estimated_counts = np.pad(estimated_counts, (0, size - len(estimated_counts)))
    recorded_counts = np.pad(recorded_counts, (0, size - len(recorded_counts)))
    hits = np.minimum(estimated_counts, recorded_counts).sum()
    return float(hits / max(1, estimated_counts.sum())), float(hits / max(1, recorded_counts.sum()))
