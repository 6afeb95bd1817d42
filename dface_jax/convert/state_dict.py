"""Reading PyTorch state dicts without (necessarily) PyTorch, and checking them.

``load_state_dict(path)`` reads ``.npz`` and ``.safetensors`` files with numpy alone;
``.pt`` / ``.pth`` / ``.bin`` pickles need PyTorch (the optional extra
``pip install dface-jax[torch]``). Keys come back as the release names them, with a
DataParallel ``module.`` prefix removed.
"""

from __future__ import annotations

import io
from typing import Mapping

import numpy as np
from etils import epath

from data_pipelines import storage
from data_pipelines.errors import InputError

TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
# How many mismatches an error lists before "...".
MAX_LISTED_PROBLEMS = 10


class StateDictError(InputError, ValueError):
    """A state-dict file cannot be read as one (missing, unknown format, no PyTorch)."""


class StateDictMismatchError(StateDictError):
    """A state dict's keys or shapes differ from what a model expects."""


def strip_prefix(state_dict: Mapping[str, np.ndarray], prefix: str = "module.") -> dict[str, np.ndarray]:
    """Removes ``prefix`` from the keys that start with it (DataParallel's ``module.``)."""
    return {(key[len(prefix):] if key.startswith(prefix) else key): value
            for key, value in state_dict.items()}


def select_prefix(state_dict: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """The entries under ``prefix`` (e.g. ``"tokenizer/"`` in the parity fixture), prefix removed."""
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}


def _load_torch(path: epath.Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError:
        raise StateDictError(
            f"reading the PyTorch checkpoint {path} needs PyTorch: "
            f"pip install dface-jax[torch] (or convert it to .safetensors / .npz elsewhere)"
        ) from None
    loaded = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    # Training scripts sometimes wrap the weights: {"state_dict": {...}} or {"model": {...}}.
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, dict) and isinstance(loaded.get(wrapper), dict):
            loaded = loaded[wrapper]
    if not isinstance(loaded, dict):
        raise StateDictError(f"{path}: expected a state dict (name -> tensor), got "
                             f"{type(loaded).__name__}")
    arrays = {}
    for key, value in loaded.items():
        if not hasattr(value, "detach"):
            raise StateDictError(f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor")
        arrays[key] = value.detach().cpu().float().numpy() if value.is_floating_point() \
            else value.detach().cpu().numpy()
    return arrays


def load_state_dict(path: storage.PathLike, *, prefix: str = "") -> dict[str, np.ndarray]:
    """Loads a state dict as numpy arrays from ``.npz``, ``.safetensors`` or a torch pickle.

    Args:
      path: the file (local or ``gs://``).
      prefix: keep only keys under this prefix and drop it (e.g. ``"tokenizer/"``).
    Returns:
      key -> array, with a leading ``module.`` removed from every key.
    """
    path = storage.as_path(path)
    if not path.exists():
        raise StateDictError(f"{path}: state dict file not found")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(io.BytesIO(path.read_bytes()), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    elif suffix == ".safetensors":
        from safetensors.numpy import load
        arrays = load(path.read_bytes())
    elif suffix in TORCH_SUFFIXES:
        arrays = _load_torch(path)
    else:
        raise StateDictError(f"{path}: unknown state dict format {suffix!r}; expected .npz, "
                         f".safetensors or a PyTorch file ({', '.join(TORCH_SUFFIXES)})")
    if prefix:
        arrays = select_prefix(arrays, prefix)
        if not arrays:
            raise StateDictError(f"{path}: no keys start with {prefix!r}")
    return strip_prefix(arrays)


def check_keys_and_shapes(expected: Mapping[str, tuple[int, ...]],
                          given: Mapping[str, np.ndarray], source: str) -> None:
    """Raises :class:`StateDictMismatchError` unless ``given`` has exactly the expected keys
    and shapes; the message names ``source`` and lists the first mismatches by key."""
    missing = [key for key in expected if key not in given]
    unexpected = [key for key in given if key not in expected]
    wrong_shape = [(key, tuple(np.shape(given[key])), tuple(shape))
                   for key, shape in expected.items()
                   if key in given and tuple(np.shape(given[key])) != tuple(shape)]
    if not (missing or unexpected or wrong_shape):
        return
    lines = [f"missing key {key!r}" for key in missing]
    lines += [f"unexpected key {key!r}" for key in unexpected]
    lines += [f"key {key!r} has shape {got}, expected {want}" for key, got, want in wrong_shape]
    listed = "; ".join(lines[:MAX_LISTED_PROBLEMS])
    more = f"; ... and {len(lines) - MAX_LISTED_PROBLEMS} more" if len(lines) > MAX_LISTED_PROBLEMS else ""
    raise StateDictMismatchError(
        f"{source}: state dict does not match the model ({len(missing)} missing, "
        f"{len(unexpected)} unexpected, {len(wrong_shape)} with a wrong shape): {listed}{more}")


def linear_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch ``nn.Linear`` weight [out, in] -> Flax ``Dense`` kernel [in, out]."""
    return np.ascontiguousarray(np.asarray(weight, np.float32).T)


def conv_kernel(weight: np.ndarray) -> np.ndarray:
    """PyTorch conv weight [out, in/groups, *spatial] -> Flax ``Conv`` [*spatial, in/groups, out]."""
    weight = np.asarray(weight, np.float32)
    spatial_axes = tuple(range(2, weight.ndim))
    return np.ascontiguousarray(np.transpose(weight, spatial_axes + (1, 0)))
