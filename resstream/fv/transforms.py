"""Lucent's FV transforms (docs/method.md#feature-visualizations) for the units of a chunk, each unit with its own random draws.

Each unit draws its random values (shifts, scale, angle) from its own numpy RandomState, in the
order lucent's transform list draws them, so a unit's draws never depend on its chunk.  Two ways
to apply them, same draws:

* per unit (:func:`per_unit_inputs`): lucent's own transform functions on each unit's image, the
  unit's RandomState swapped in around the call.  The CPU default: tests/fv/test_lucent_equivalence.py
  proves it equal to lucent's ``render_vis``.
* batched (:class:`BatchedTransforms`): the same operations (reflect pad, kornia's affine warps
  through ``affine_grid`` + ``grid_sample``, bilinear upsampling) applied to the whole chunk at
  once, units grouped by their drawn scale.  Lucent's calls cost ~120-280 small tensor ops per
  unit and step, and three blocking host-to-device copies (its warp matrices are made on the host);
  on a GPU that launch overhead, not the FLOPs, would set the pace.  Here each distinct warp
  matrix is computed once on the host with kornia's own functions and kept on the device
  (:class:`WarpMatrices`), and the draws come from each unit's generator directly.  The GPU
  default.  On CPU it gives the per-unit way's bits (tests/fv/test_fv_gpu_path.py).

``deterministic`` (the GPU default) swaps the backward passes of reflection padding, bilinear
resizing and ``grid_sample`` for fixed-order ones (the forward is torch's): on CUDA, torch's own
add with atomics in an order that changes from run to run.  Their gradients equal torch's to float
rounding (the sample coordinates' last bits), tested on CPU.

The per-unit and the batched way live side by side: they must draw and compute the same.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # kornia 0.4.1 (lucent's pin) warns about torch APIs at import
    import kornia
    from kornia.geometry.transform.affwarp import _compute_translation_matrix
    from lucent.optvis import transform as lucent_transform

IMAGE_SIZE = 224
SCALES = (1, 0.975, 1.025, 0.95, 1.05)
ANGLES = tuple(range(-5, 6))


@dataclass
class InputGroup:
    """Transformed, normalised inputs of the units ``members`` (chunk indices), all of one size."""

    members: list[int]
    x: torch.Tensor  # [len(members), 3, size, size]

    @property
    def size(self) -> int:
        return self.x.shape[-1]


def lucent_transforms(jitter: int) -> list:
    """docs/method.md#feature-visualizations: j < 4 → scale + rotate, no crop (sizes 224-236); j ≥ 4 → pad(j, reflect), jitter(j),
    scale, rotate, jitter(j//2), centre crop 224."""
    scale = lucent_transform.random_scale(list(SCALES))
    rotate = lucent_transform.random_rotate(list(ANGLES))
    if jitter < 4:
        return [scale, rotate]
    steps = [lucent_transform.pad(jitter, mode="reflect"), lucent_transform.jitter(jitter), scale, rotate]
    if jitter // 2 > 1:
        steps.append(lucent_transform.jitter(jitter // 2))
    steps.append(center_crop(IMAGE_SIZE))
    return steps


def center_crop(size: int):
    # Same arithmetic as torchvision's CenterCrop (the author's HEAD), for square tensors.
    def inner(t):
        h, w = t.shape[-2:]
        top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
        return t[..., top : top + size, left : left + size]

    return inner


class UnitRandom:
    """Each unit's own numpy RandomState; lucent's transform calls draw from numpy's global
    generator, so :meth:`apply` swaps the unit's in around them."""

    def __init__(self, seeds):
        self.generators = [np.random.RandomState(s ^ 0x5EED) for s in seeds]

    @property
    def states(self) -> list:
        return [g.get_state() for g in self.generators]

    def apply(self, i, fn, *args):
        outer = np.random.get_state()
        np.random.set_state(self.generators[i].get_state())
        try:
            return fn(*args)
        finally:
            self.generators[i].set_state(np.random.get_state())
            np.random.set_state(outer)


def group_by_size(inputs: list[torch.Tensor]) -> list[InputGroup]:
    """Per-unit inputs as one group per input size, sizes in order of first appearance."""
    by_size: dict[int, list[int]] = {}
    for i, x in enumerate(inputs):
        by_size.setdefault(x.shape[-1], []).append(i)
    return [InputGroup(members, torch.cat([inputs[i] for i in members])) for members in by_size.values()]


def per_unit_inputs(images, jitter_transforms, rng: UnitRandom, mean, std) -> list[InputGroup]:
    """Lucent's transform calls on each unit's image with its own draws, then ImageNet normalisation."""
    # split, not images[i:i+1]: each slice's backward would build a full-batch gradient (O(k²)).
    inputs = [(rng.apply(i, jitter_transforms, image) - mean) / std for i, image in enumerate(torch.split(images, 1))]
    return group_by_size(inputs)


def _draw(rs: np.random.RandomState, jitter: int) -> dict:
    """One unit's draws for one step, the numbers lucent's transform list draws, in its order:
    ``np.random.choice(n)`` and ``np.random.choice(list_of_n)`` take ``randint(0, n)`` from the
    stream (numpy's legacy ``choice``), called here directly (a quarter of the time)."""
    d = {}
    if jitter >= 4:
        d["shift"] = (rs.randint(0, jitter), rs.randint(0, jitter))
    d["scale"] = SCALES[rs.randint(0, len(SCALES))]
    d["angle"] = ANGLES[rs.randint(0, len(ANGLES))]
    if jitter >= 4 and jitter // 2 > 1:
        d["shift2"] = (rs.randint(0, jitter // 2), rs.randint(0, jitter // 2))
    return d


def warp_theta(matrix: torch.Tensor, size: int) -> torch.Tensor:
    """kornia 0.4.1 ``warp_affine``'s sampling matrix for [B, 2, 3] pixel matrices on a square image
    of ``size`` (output size = input size), computed where ``matrix`` lives."""
    m3 = kornia.convert_affinematrix_to_homography(matrix)
    dst_norm_trans_src_norm = kornia.normalize_homography(m3, (size, size), (size, size))
    return torch.inverse(dst_norm_trans_src_norm)[:, :2, :]


def _shift_theta(shift, size: int) -> torch.Tensor:
    """lucent's ``jitter`` for one unit: kornia ``translate``'s matrix, lucent's arithmetic."""
    matrix = _compute_translation_matrix(torch.tensor([list(shift)]).float())
    return warp_theta(matrix[:, :2, :3], size)


def _rotation_theta(angle, size: int) -> torch.Tensor:
    """lucent's ``random_rotate`` for one unit: rotation about the image centre, lucent's arithmetic."""
    center = torch.ones(1, 2)
    center[..., 0] = (size - 1) / 2
    center[..., 1] = (size - 1) / 2
    matrix = kornia.get_rotation_matrix2d(center, torch.ones(1) * angle, torch.ones(1, 2))
    return warp_theta(matrix, size)


class WarpMatrices:
    """Each distinct warp's sampling matrix (and, for the fixed-order backward, its pixel inverse),
    made once with kornia's arithmetic on the host and kept on the device: a step only stacks them.
    There are few: shifts below the jitter, eleven angles, a handful of image sizes."""

    MAKERS = {"shift": _shift_theta, "rotate": _rotation_theta}

    def __init__(self, device, deterministic: bool):
        self.device, self.deterministic = device, deterministic
        self._kept: dict[tuple, tuple[torch.Tensor, torch.Tensor | None]] = {}

    def _one(self, kind: str, value, size: int):
        key = (kind, value, size)
        if key not in self._kept:
            theta = self.MAKERS[kind](value, size)
            inverse = _pixel_inverse(theta, size).to(self.device, non_blocking=True) if self.deterministic else None
            self._kept[key] = (theta.to(self.device, non_blocking=True), inverse)
        return self._kept[key]

    def stack(self, kind: str, values, size: int):
        """([B, 2, 3] sampling matrices, [B, 2, 3] pixel inverses or None) for one value per unit."""
        kept = [self._one(kind, v, size) for v in values]
        theta = torch.cat([t for t, _ in kept])
        return theta, (torch.cat([i for _, i in kept]) if self.deterministic else None)


def warp(x: torch.Tensor, theta: torch.Tensor, inverse: torch.Tensor | None = None) -> torch.Tensor:
    """kornia's ``warp_affine`` (bilinear, zeros, align_corners False) with ready sampling matrices;
    with ``inverse``, the fixed-order backward."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if inverse is not None:
        return _GridSample.apply(x, grid, inverse)
    return F.grid_sample(x, grid, align_corners=False, mode="bilinear", padding_mode="zeros")


def translate(
    x: torch.Tensor, shifts, deterministic: bool = False, matrices: WarpMatrices | None = None
) -> torch.Tensor:
    """lucent's ``jitter``: kornia ``translate`` by each unit's integer (dx, dy)."""
    matrices = matrices or WarpMatrices(x.device, deterministic)
    return warp(x, *matrices.stack("shift", [(int(dx), int(dy)) for dx, dy in shifts], x.shape[-1]))


def rotate(x: torch.Tensor, angles, deterministic: bool = False, matrices: WarpMatrices | None = None) -> torch.Tensor:
    """lucent's ``random_rotate``: kornia's rotation about the image centre, each unit its angle."""
    matrices = matrices or WarpMatrices(x.device, deterministic)
    return warp(x.float(), *matrices.stack("rotate", [int(a) for a in angles], x.shape[-1]))


def rescale(x: torch.Tensor, scale, deterministic: bool = False) -> torch.Tensor:
    """lucent's ``random_scale`` with one drawn scale for every unit of ``x``."""
    shp = x.shape[2:]
    scale_shape = [int(lucent_transform._roundup(scale * d)) for d in shp]
    pad_x = max(0, lucent_transform._roundup((shp[1] - scale_shape[1]) / 2))
    pad_y = max(0, lucent_transform._roundup((shp[0] - scale_shape[0]) / 2))
    if deterministic:
        up = _Upsample.apply(x, tuple(scale_shape))
    else:
        up = F.interpolate(x, size=scale_shape, mode="bilinear", align_corners=True)
    return F.pad(up, [int(pad_y), int(pad_x)] * 2)


def reflect_pad(x: torch.Tensor, pad: int, deterministic: bool = False) -> torch.Tensor:
    """lucent's ``pad(pad, mode="reflect")``."""
    return _ReflectPad.apply(x, pad) if deterministic else F.pad(x, [pad] * 4, mode="reflect")


def index_on(device, members: list[int]) -> torch.Tensor:
    """Chunk indices as a tensor on ``device``, sent without making the host wait for the device."""
    return torch.tensor(members).to(device, non_blocking=True)


class BatchedTransforms:
    """Lucent's transform list for a whole chunk: the same per-unit draws as :func:`per_unit_inputs`,
    applied as a few batched operations per step (one group per drawn scale)."""

    def __init__(self, jitter: int, rng: UnitRandom, deterministic: bool = False):
        self.jitter, self.rng, self.det = jitter, rng, deterministic
        self.crop = center_crop(IMAGE_SIZE)
        self.matrices: WarpMatrices | None = None  # made on the images' device at the first step

    def __call__(self, images, mean, std) -> list[InputGroup]:
        k = images.shape[0]
        draws = [_draw(g, self.jitter) for g in self.rng.generators]
        self.matrices = self.matrices or WarpMatrices(images.device, self.det)
        x = images
        if self.jitter >= 4:
            x = reflect_pad(x, self.jitter, self.det)
            x = translate(x, [d["shift"] for d in draws], matrices=self.matrices)
        groups: dict[int, InputGroup] = {}
        for scale in SCALES:
            members = [i for i in range(k) if draws[i]["scale"] == scale]
            if not members:
                continue
            xs = x if len(members) == k else x.index_select(0, index_on(x.device, members))
            xs = rescale(xs, scale, self.det)
            xs = rotate(xs, [draws[i]["angle"] for i in members], matrices=self.matrices)
            if "shift2" in draws[0]:
                xs = translate(xs, [draws[i]["shift2"] for i in members], matrices=self.matrices)
            if self.jitter >= 4:
                xs = self.crop(xs)
            _merge(groups, InputGroup(members, (xs - mean) / std))
        return list(groups.values())


def _merge(groups: dict[int, InputGroup], group: InputGroup) -> None:
    """Groups of equal input size become one (one forward for them)."""
    same = groups.get(group.size)
    if same is None:
        groups[group.size] = group
    else:
        groups[group.size] = InputGroup(same.members + group.members, torch.cat([same.x, group.x]))


# -- deterministic backward passes (GPU) --------------------------------------------------------------
# On CUDA, torch computes the backward of reflection padding, bilinear interpolation and grid_sample
# with atomic additions: the order of the additions, and so the last bits, change from run to run
# (torch.use_deterministic_algorithms lists all three as nondeterministic), and Adam amplifies
# last-bit differences.  These functions keep torch's forward and compute the same gradient as
# fixed-order sums (gathers, matrix products), so a GPU run is repeatable.


class _ReflectPad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, pad: int):
        ctx.pad = pad
        return F.pad(x, [pad] * 4, mode="reflect")

    @staticmethod
    def backward(ctx, g):
        return _fold_reflection(_fold_reflection(g, ctx.pad, -1), ctx.pad, -2), None


def _fold_reflection(g: torch.Tensor, p: int, dim: int) -> torch.Tensor:
    """The adjoint of reflect-padding by ``p`` along ``dim``: the padded strips added back onto the
    rows (columns) they mirror (padded[p - 1 - j] = x[j + 1] ... )."""
    n = g.shape[dim] - 2 * p
    out = g.narrow(dim, p, n).clone()
    out.narrow(dim, 1, p).add_(g.narrow(dim, 0, p).flip(dim))
    out.narrow(dim, n - 1 - p, p).add_(g.narrow(dim, p + n, p).flip(dim))
    return out


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(n_in: int, n_out: int, device) -> torch.Tensor:
    """[n_out, n_in] weights of torch's bilinear resize with align_corners=True along one axis."""
    scale = (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    src = torch.arange(n_out, dtype=torch.float32) * torch.tensor(scale, dtype=torch.float32)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo.float()
    m = torch.zeros(n_out, n_in)
    rows = torch.arange(n_out)
    m.index_put_((rows, lo), 1 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m.to(device, non_blocking=True)


class _Upsample(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, size: tuple[int, int]):
        ctx.in_size = x.shape[-2:]
        return F.interpolate(x, size=list(size), mode="bilinear", align_corners=True)

    @staticmethod
    def backward(ctx, g):
        (h, w), (oh, ow) = ctx.in_size, g.shape[-2:]
        rows, cols = _interpolation_matrix(h, oh, g.device), _interpolation_matrix(w, ow, g.device)
        return rows.t() @ g @ cols, None


class _GridSample(torch.autograd.Function):
    """``grid_sample`` (bilinear, zeros, align_corners False) of an affine, distance-preserving warp
    (a shift or a rotation, output size = input size), differentiable in the image only."""

    @staticmethod
    def forward(ctx, x, grid, inverse):
        ctx.save_for_backward(grid, inverse)
        return F.grid_sample(x, grid, align_corners=False, mode="bilinear", padding_mode="zeros")

    @staticmethod
    def backward(ctx, g):
        grid, inverse = ctx.saved_tensors
        return _grid_sample_image_grad(g, grid, inverse), None, None


@functools.lru_cache(maxsize=32)
def _pixel_grid(h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """([3, h, w] pixel coordinates (x, y, 1), the neighbour offsets -1, 0, 1) on ``device``."""
    ys, xs = torch.meshgrid(
        torch.arange(h, device=device, dtype=torch.float32),
        torch.arange(w, device=device, dtype=torch.float32),
        indexing="ij",
    )
    return torch.stack([xs, ys, torch.ones_like(xs)]), torch.tensor([-1, 0, 1], device=device)


def _grid_sample_image_grad(g, grid, inverse) -> torch.Tensor:
    """d(loss)/d(image) of a grid_sample: for every image pixel, the sum over the output pixels that
    sample within one pixel of it of their gradient times the bilinear weight.  ``inverse``
    [B, 2, 3] maps an image pixel to the output pixel that samples it; a distance-preserving map
    puts every such output pixel within one row and column of that one (rounded), so the nine
    neighbours are gathered at once and summed in a fixed order."""
    b, c, h, w = g.shape
    pixel, offsets = _pixel_grid(h, w, g.device)
    xs, ys = pixel[0], pixel[1]
    near = torch.einsum("bij,jhw->bihw", inverse, pixel).round().long()  # [B, 2, h, w]
    qx = near[:, 0, None, None] + offsets[None, None, :, None, None]  # [B, 1, 3, h, w]
    qy = near[:, 1, None, None] + offsets[None, :, None, None, None]  # [B, 3, 1, h, w]
    inside = ((qx >= 0) & (qx < w) & (qy >= 0) & (qy < h)).reshape(b, 9, h, w)
    index = (qy.clamp(0, h - 1) * w + qx.clamp(0, w - 1)).reshape(b, 9 * h * w)
    sample = torch.stack([((grid[..., 0] + 1) * w - 1) / 2, ((grid[..., 1] + 1) * h - 1) / 2], 1).flatten(
        2
    )  # [B, 2, h*w]
    sx, sy = sample.gather(2, index[:, None].expand(b, 2, -1)).view(b, 2, 9, h, w).unbind(1)
    weight = (1 - (sx - xs).abs()).clamp(min=0) * (1 - (sy - ys).abs()).clamp(min=0) * inside
    neighbours = g.flatten(2).gather(2, index[:, None].expand(b, c, -1)).view(b, c, 9, h, w)
    return (weight[:, None] * neighbours).sum(dim=2)


def _pixel_inverse(theta: torch.Tensor, size: int) -> torch.Tensor:
    """[B, 2, 3]: image pixel (x, y, 1) -> the output pixel that samples it, for ``affine_grid`` +
    ``grid_sample`` (align_corners False) with ``theta`` on a square image of ``size``.  There an
    output pixel o samples the image at A·o + t with A = theta[:, :, :2] and
    t = size/2 · (A·(1/size - 1, 1/size - 1) + theta[:, :, 2]) + (size - 1)/2."""
    th = theta.double()
    a = th[:, :, :2]
    c = torch.full((th.shape[0], 2, 1), 1 / size - 1, dtype=torch.float64)
    t = size / 2 * (a @ c + th[:, :, 2:]) + (size - 1) / 2
    a_inv = torch.linalg.inv(a)
    return torch.cat([a_inv, -a_inv @ t], dim=2).float()
