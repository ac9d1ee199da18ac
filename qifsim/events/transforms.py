"""Seeded, composable transforms for event frames ``[T, 2, H, W]`` and event arrays.

Every transform is called as ``transform(data, rng=None)``. Random transforms
draw their parameters from ``rng`` when given, else from their own
``np.random.Generator`` (built from the ``seed`` given at construction: an
int, a Generator, or ``None`` for fresh entropy), so a pipeline built with
a seed gives the same outputs call after call, run after run. A random
transform splits into ``sample_params(rng) -> dict`` and a deterministic
``apply(data, params)``. In a data loader with worker processes, pass a
per-sample generator (e.g. ``np.random.default_rng([seed, epoch, index])``):
forked workers would otherwise share one generator state and repeat draws.

Frame transforms take a numpy array or a torch tensor whose last two axes are
``(H, W)``; all leading axes (time, polarity, ...) share the same random
draw, so all ``T`` frames of a sample move together. numpy in gives numpy out
(the dtype kept), a tensor gives a tensor on the same device. Sizes follow
torch: ``size`` is an int or ``(height, width)``.

Geometry:

* flips and rolls are exact index operations; rolls wrap around (``np.roll``);
* :class:`Resize` is ``torch.nn.functional.interpolate`` (bilinear with
  ``align_corners=False`` and no antialiasing, as TET; or nearest, as NDA);
* rotations and shears resample through an affine grid
  (``torch.nn.functional.grid_sample``, ``align_corners=False``, zero fill
  outside the image) about the image centre; ``interpolation="nearest"``
  (default, like torchvision's RandomRotation / RandomAffine) keeps counts
  integral, ``"bilinear"`` blends them. A positive angle rotates the picture
  counter-clockwise as displayed (row 0 at the top), like ``np.rot90``; a
  positive shear moves rows below the centre to the right.

Event transforms (:class:`Denoise`, :class:`Downsample`) take and return
structured event arrays.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .array import validate_events

if TYPE_CHECKING:  # torch is imported on first use: numpy-only pipelines never load it
    import torch

SeedLike = int | np.random.Generator | None
INTERPOLATIONS = ("nearest", "bilinear")


def _generator(seed: SeedLike) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _hw(size: int | Sequence[int]) -> tuple[int, int]:
    """``(height, width)`` from an int or a pair; both must be >= 1."""
    h, w = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if h < 1 or w < 1:
        raise ValueError(f"size must be positive, got {size!r}")
    return int(h), int(w)


def _check_interpolation(mode: str) -> str:
    if mode not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {mode!r}")
    return mode


class Transform:
    """Base class: ``__call__(data, rng=None)`` = ``apply(data, sample_params(rng))``."""

    def __init__(self, seed: SeedLike = None) -> None:
        self.rng = _generator(seed)

    def sample_params(self, rng: np.random.Generator) -> dict[str, Any]:
        """Draw this call's random parameters (none for deterministic transforms)."""
        return {}

    def apply(self, data, params: dict[str, Any]):
        """Apply the transform with fixed parameters."""
        raise NotImplementedError

    def __call__(self, data, rng: np.random.Generator | None = None):
        return self.apply(data, self.sample_params(self.rng if rng is None else rng))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if k != "rng")
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply ``transforms`` in order.

    With an ``rng`` in the call, or a ``seed`` here, every member draws from
    that one generator (one stream for the whole pipeline); with neither,
    each member uses its own generator.
    """

    def __init__(self, transforms: Sequence[Transform], seed: SeedLike = None) -> None:
        self.transforms = list(transforms)
        self.rng = None if seed is None else _generator(seed)

    def __call__(self, data, rng: np.random.Generator | None = None):
        rng = self.rng if rng is None else rng
        for transform in self.transforms:
            data = transform(data, rng)
        return data

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


# -- frame helpers -------------------------------------------------------------


def _is_tensor(data) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(data, torch.Tensor)


def _to_torch(frames) -> tuple[torch.Tensor, bool]:
    """``(tensor, was_numpy)``; numpy input is wrapped without a copy when possible."""
    import torch

    if isinstance(frames, torch.Tensor):
        return frames, False
    return torch.from_numpy(np.ascontiguousarray(frames)), True


def _back(result: torch.Tensor, was_numpy: bool, like):
    if was_numpy:
        return result.numpy().astype(like.dtype, copy=False)
    return result


def _as_images(x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, ...]]:
    """View ``[..., C, H, W]`` as a float batch ``[N, C, H, W]``; return it and the leading shape.

    A 4-d ``[T, 2, H, W]`` stack passes through unchanged, so results equal a
    direct ``F.interpolate`` / ``F.grid_sample`` call on it bit for bit.
    """
    if x.dim() < 2:
        raise ValueError(f"frames need at least 2 axes (H, W), got shape {tuple(x.shape)}")
    lead = tuple(x.shape[:-2])
    channels = x.shape[-3] if x.dim() >= 3 else 1
    images = x.reshape(-1, channels, *x.shape[-2:])
    if not images.is_floating_point():
        images = images.float()
    return images, lead


def resize_frames(frames, size: int | Sequence[int], mode: str = "bilinear"):
    """Resize the last two axes to ``size`` with ``F.interpolate`` (see module docstring)."""
    import torch.nn.functional as F

    _check_interpolation(mode)
    x, was_numpy = _to_torch(frames)
    images, lead = _as_images(x)
    h, w = _hw(size)
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    out = F.interpolate(images, size=(h, w), mode=mode, **kwargs)
    return _back(out.reshape(*lead, h, w).to(x.dtype), was_numpy, frames)


def affine_frames(frames, matrix: np.ndarray, mode: str = "nearest"):
    """Resample the last two axes through ``input = matrix @ output`` about the image centre.

    ``matrix`` is 2x2 in pixel units (x right, y down, origin at the centre)
    and maps each output pixel to the input point it samples; outside the
    image reads zero.
    """
    import torch
    import torch.nn.functional as F

    _check_interpolation(mode)
    x, was_numpy = _to_torch(frames)
    images, lead = _as_images(x)
    h, w = images.shape[-2:]
    m = np.asarray(matrix, dtype=np.float64)
    # pixel units -> normalised [-1, 1] units: x by w/2, y by h/2
    theta = np.array(
        [[m[0, 0], m[0, 1] * h / w, 0.0], [m[1, 0] * w / h, m[1, 1], 0.0]], dtype=np.float64
    )
    theta_t = torch.as_tensor(theta, dtype=images.dtype, device=images.device)
    theta_t = theta_t.expand(images.shape[0], 2, 3)
    grid = F.affine_grid(theta_t, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode=mode, padding_mode="zeros", align_corners=False)
    return _back(out.reshape(*lead, h, w).to(x.dtype), was_numpy, frames)


def rotation_matrix(degrees: float) -> np.ndarray:
    """Output-to-input map (pixel units) of a counter-clockwise rotation by ``degrees``."""
    a = math.radians(degrees)
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s], [s, c]])


def shear_matrix(degrees: float) -> np.ndarray:
    """Output-to-input map of an x-shear: row ``y`` (from the centre) moves by ``tan * y``."""
    return np.array([[1.0, -math.tan(math.radians(degrees))], [0.0, 1.0]])


def roll_frames(frames, shift_x: int = 0, shift_y: int = 0):
    """Roll the last two axes by whole pixels (wrapping around), positive = right / down."""
    if _is_tensor(frames):
        import torch

        return torch.roll(frames, shifts=(int(shift_y), int(shift_x)), dims=(-2, -1))
    return np.roll(frames, (int(shift_y), int(shift_x)), axis=(-2, -1))


def flip_frames(frames):
    """Mirror the last axis (x)."""
    if _is_tensor(frames):
        import torch

        return torch.flip(frames, dims=(-1,))
    return np.ascontiguousarray(np.flip(frames, axis=-1))


# -- frame transforms ----------------------------------------------------------


class Resize(Transform):
    """Resize frames to ``size`` (int or ``(height, width)``), ``mode`` bilinear or nearest."""

    def __init__(self, size: int | Sequence[int], mode: str = "bilinear") -> None:
        super().__init__(None)
        self.size = _hw(size)
        self.mode = _check_interpolation(mode)

    def apply(self, data, params):
        return resize_frames(data, self.size, self.mode)


class Crop(Transform):
    """Keep the window ``x0 <= x < x0 + width``, ``y0 <= y < y0 + height`` of the frames."""

    def __init__(self, x0: int, y0: int, width: int, height: int) -> None:
        super().__init__(None)
        if x0 < 0 or y0 < 0 or width < 1 or height < 1:
            raise ValueError(f"bad crop window x0={x0}, y0={y0}, width={width}, height={height}")
        self.x0, self.y0, self.width, self.height = x0, y0, width, height

    def apply(self, data, params):
        h, w = data.shape[-2:]
        if self.x0 + self.width > w or self.y0 + self.height > h:
            raise ValueError(
                f"crop window {self.width}x{self.height} at ({self.x0}, {self.y0}) "
                f"exceeds the {w}x{h} frames"
            )
        return data[..., self.y0 : self.y0 + self.height, self.x0 : self.x0 + self.width]


class CenterCrop(Transform):
    """Keep the central ``size`` (int or ``(height, width)``) window; odd margins go top-left."""

    def __init__(self, size: int | Sequence[int]) -> None:
        super().__init__(None)
        self.size = _hw(size)

    def apply(self, data, params):
        h, w = data.shape[-2:]
        ch, cw = self.size
        if ch > h or cw > w:
            raise ValueError(f"center crop {ch}x{cw} exceeds the {h}x{w} frames")
        return Crop((w - cw) // 2, (h - ch) // 2, cw, ch).apply(data, {})


class RandomHorizontalFlip(Transform):
    """Mirror x with probability ``p``."""

    def __init__(self, p: float = 0.5, seed: SeedLike = None) -> None:
        super().__init__(seed)
        self.p = float(p)

    def sample_params(self, rng):
        return {"flip": bool(rng.random() < self.p)}

    def apply(self, data, params):
        return flip_frames(data) if params["flip"] else data


class RandomRoll(Transform):
    """Roll by integers drawn uniformly from ``[-max_shift, max_shift]`` (wrapping around).

    ``axes`` names the axes (``"x"``, ``"y"``). With ``one_axis=True`` one of
    them is picked uniformly and rolled (DVS128-Gesture: up to 5 px in x or
    y); with ``False`` each is rolled by its own draw (NDA's roll).
    """

    def __init__(
        self,
        max_shift: int,
        axes: Sequence[str] = ("x", "y"),
        one_axis: bool = True,
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed)
        if max_shift < 0 or not axes or any(a not in ("x", "y") for a in axes):
            raise ValueError(f"need max_shift >= 0 and axes from ('x', 'y'), got {axes!r}")
        self.max_shift = int(max_shift)
        self.axes = tuple(axes)
        self.one_axis = one_axis

    def sample_params(self, rng):
        axes = (self.axes[int(rng.integers(len(self.axes)))],) if self.one_axis else self.axes
        shifts = {"x": 0, "y": 0}
        for axis in axes:
            shifts[axis] = int(rng.integers(-self.max_shift, self.max_shift + 1))
        return shifts

    def apply(self, data, params):
        return roll_frames(data, params["x"], params["y"])


class RandomRotation(Transform):
    """Rotate all frames of a sample by one angle drawn uniformly from ``[-degrees, degrees]``."""

    def __init__(self, degrees: float, interpolation: str = "nearest", seed: SeedLike = None):
        super().__init__(seed)
        self.degrees = float(degrees)
        self.interpolation = _check_interpolation(interpolation)

    def sample_params(self, rng):
        return {"degrees": float(rng.uniform(-self.degrees, self.degrees))}

    def apply(self, data, params):
        return affine_frames(data, rotation_matrix(params["degrees"]), self.interpolation)


class RandomShear(Transform):
    """x-shear by an angle drawn uniformly from ``[-max_degrees, max_degrees]``."""

    def __init__(self, max_degrees: float, interpolation: str = "nearest", seed: SeedLike = None):
        super().__init__(seed)
        self.max_degrees = float(max_degrees)
        self.interpolation = _check_interpolation(interpolation)

    def sample_params(self, rng):
        return {"degrees": float(rng.uniform(-self.max_degrees, self.max_degrees))}

    def apply(self, data, params):
        return affine_frames(data, shear_matrix(params["degrees"]), self.interpolation)


class NDAOneOf(Transform):
    """NDA's "M1N1" policy: one op per sample, drawn uniformly from three.

    * ``"roll"``: x and y each rolled by an integer in ``[-roll, roll]``;
    * ``"rotate"``: rotation by an angle in ``[-degrees, degrees]``;
    * ``"shear"``: x-shear by an angle in ``[-shear, shear]``.

    N-Caltech101 (paper): ``roll=3, degrees=15, shear=15``; the NDA code's
    CIFAR10-DVS recipe: ``roll=5, degrees=30, shear=30``.
    """

    OPS = ("roll", "rotate", "shear")

    def __init__(
        self,
        roll: int = 3,
        degrees: float = 15.0,
        shear: float = 15.0,
        interpolation: str = "nearest",
        seed: SeedLike = None,
    ) -> None:
        super().__init__(seed)
        self.roll = int(roll)
        self.degrees = float(degrees)
        self.shear = float(shear)
        self.interpolation = _check_interpolation(interpolation)

    def sample_params(self, rng):
        op = self.OPS[int(rng.integers(3))]
        if op == "roll":
            x, y = rng.integers(-self.roll, self.roll + 1, size=2)
            return {"op": op, "x": int(x), "y": int(y)}
        limit = self.degrees if op == "rotate" else self.shear
        return {"op": op, "degrees": float(rng.uniform(-limit, limit))}

    def apply(self, data, params):
        if params["op"] == "roll":
            return roll_frames(data, params["x"], params["y"])
        maker = rotation_matrix if params["op"] == "rotate" else shear_matrix
        return affine_frames(data, maker(params["degrees"]), self.interpolation)


# -- event transforms ----------------------------------------------------------


class Denoise(Transform):
    """Background-activity filter on events (numba; see :func:`kernels.denoise_mask`).

    Event ``i`` is kept iff an earlier event (stream order) at one of its 8
    neighbouring pixels (``max(|dx|, |dy|) == 1``, the pixel itself excluded)
    happened less than ``filter_time_us`` before it: ``t_i - t_j <
    filter_time_us``. Every event, kept or dropped, refreshes its pixel's last
    timestamp. (tonic's Denoise differs: 4 neighbours, and it counts pixels
    that never fired as firing at ``t = 0``.)
    """

    def __init__(self, filter_time_us: int, sensor_size: tuple[int, int, int]) -> None:
        super().__init__(None)
        if filter_time_us < 0:
            raise ValueError(f"filter_time_us must be >= 0, got {filter_time_us}")
        self.filter_time_us = int(filter_time_us)
        self.sensor_size = tuple(sensor_size)

    def apply(self, data, params):
        from .kernels import denoise_mask

        validate_events(data, self.sensor_size)
        if data.size == 0:
            return data.copy()
        t = data["t"].astype(np.int64, copy=False)
        width, height, _ = self.sensor_size
        keep = denoise_mask(data["x"], data["y"], t, width, height, self.filter_time_us)
        return data[keep]


class Downsample(Transform):
    """Integer spatial downsampling of events: ``x // factor``, ``y // factor``.

    Nothing is dropped or merged (events keep their own timestamps). The new
    sensor is ``output_size(sensor_size) = (ceil(W / factor), ceil(H / factor), 2)``.
    """

    def __init__(self, factor: int) -> None:
        super().__init__(None)
        if isinstance(factor, bool) or not isinstance(factor, (int, np.integer)) or factor < 1:
            raise ValueError(f"factor must be an integer >= 1, got {factor!r}")
        self.factor = int(factor)

    def output_size(self, sensor_size: tuple[int, int, int]) -> tuple[int, int, int]:
        """Sensor size after downsampling, ``(ceil(W / f), ceil(H / f), P)``."""
        width, height, polarities = sensor_size
        f = self.factor
        return (-(-width // f), -(-height // f), polarities)

    def apply(self, data, params):
        out = data.copy()
        out["x"] = data["x"] // self.factor
        out["y"] = data["y"] // self.factor
        return out


# -- the paper's recipes -------------------------------------------------------

PRESETS = ("cifar10-dvs", "cifar10-dvs-nda", "n-caltech101", "n-cars", "dvs128-gesture")


def preset(
    name: str,
    train: bool = True,
    seed: SeedLike = None,
    size: int | Sequence[int] | None = None,
    resize_mode: str | None = None,
) -> Compose:
    """The QIF paper's per-dataset frame pipeline (Appendix A), for ``[T, 2, H, W]`` frames.

    * ``"cifar10-dvs"``: resize 48x48 bilinear; train: random horizontal flip,
      random rotation +-10 deg;
    * ``"cifar10-dvs-nda"``: resize 48x48 nearest; train: NDA M1N1 with roll
      +-5 px, rotation +-30 deg, x-shear +-30 deg (the NDA code's recipe);
    * ``"n-caltech101"``: resize 48x48 bilinear; train: NDA M1N1 with roll
      +-3 px, rotation +-15 deg, x-shear +-15 deg;
    * ``"n-cars"``: resize 48x48 bilinear; no augmentation;
    * ``"dvs128-gesture"``: no resize (``size`` adds one); train: roll up to
      5 px in x or in y.

    ``train=False`` gives the deterministic resize alone. ``size`` overrides
    the resize (``None`` keeps the default; for dvs128-gesture it adds one),
    ``resize_mode`` its interpolation. ``seed`` seeds the whole pipeline.
    """
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {PRESETS}")
    default_size = None if name == "dvs128-gesture" else 48
    mode = resize_mode or ("nearest" if name == "cifar10-dvs-nda" else "bilinear")
    size = default_size if size is None else size
    steps: list[Transform] = [] if size is None else [Resize(size, mode)]
    if train:
        if name == "cifar10-dvs":
            steps += [RandomHorizontalFlip(0.5), RandomRotation(10.0)]
        elif name == "cifar10-dvs-nda":
            steps.append(NDAOneOf(roll=5, degrees=30.0, shear=30.0))
        elif name == "n-caltech101":
            steps.append(NDAOneOf(roll=3, degrees=15.0, shear=15.0))
        elif name == "dvs128-gesture":
            steps.append(RandomRoll(5, axes=("x", "y"), one_axis=True))
    return Compose(steps, seed=_generator(seed))
