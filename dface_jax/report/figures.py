"""The analysis pictures: pure functions from numpy arrays to PNG files.

Every function takes plain arrays (no checkpoints, no models), draws one figure with
matplotlib's non-interactive ``Agg`` backend, writes it to ``path`` (local or ``gs://``,
atomically) and returns that path.
Frames follow the project convention: float32 in [0, 1], ``[N, H, W, C]`` with C = 1 (gray)
or 3 (RGB). The report page (:mod:`dface_jax.report.page`) computes the arrays from a run.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")  # no display on servers and CI; must precede pyplot.
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from etils import epath  # noqa: E402

from data_pipelines import storage  # noqa: E402

PathLike = storage.PathLike

# Curves drawn from metrics.jsonl when present, in this order (pretraining and LOSO names).
DEFAULT_CURVE_KEYS = ("loss", "recon_loss", "vq_loss", "perplexity", "codes_in_use",
                      "train_loss", "test_uf1", "test_accuracy")


def _save(fig: plt.Figure, path: PathLike) -> epath.Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    return storage.write_bytes_atomic(path, buffer.getvalue())


def _check_frames(name: str, frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
        raise ValueError(f"{name}: expected frames [N, H, W, C] with C in (1, 3), "
                         f"got shape {frames.shape}")
    return frames


def _show_face(ax: plt.Axes, frame: np.ndarray) -> None:
    """Draws one [H, W, C] frame in [0, 1] (values outside are clipped, not rescaled)."""
    frame = np.clip(frame, 0.0, 1.0)
    if frame.shape[-1] == 1:
        ax.imshow(frame[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(frame)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_reconstructions(source: np.ndarray, driving: np.ndarray, recon: np.ndarray,
                         path: PathLike, *, max_items: int = 8) -> epath.Path:
    """Three rows: source frames, driving frames, the tokenizer's reconstructions.

    Args:
      source, driving, recon: ``[N, H, W, C]`` frames; the first ``max_items`` are drawn.
    """
    rows = {"source": _check_frames("source", source),
            "driving": _check_frames("driving", driving),
            "reconstruction": _check_frames("recon", recon)}
    if len({r.shape for r in rows.values()}) != 1:
        raise ValueError("source, driving and recon must have the same shape, got "
                         f"{[r.shape for r in rows.values()]}")
    count = min(max_items, len(rows["source"]))
    if count == 0:
        raise ValueError("plot_reconstructions: no frames to draw")
    fig, axes = plt.subplots(3, count, figsize=(1.4 * count, 4.6), squeeze=False)
    for row, (name, frames) in enumerate(rows.items()):
        for col in range(count):
            _show_face(axes[row, col], frames[col])
        axes[row, 0].set_ylabel(name, fontsize=9)
    errors = np.abs(rows["reconstruction"][:count] - rows["driving"][:count])
    fig.suptitle(f"Tokenizer reconstructions (mean |recon - driving| = {errors.mean():.4f})",
                 fontsize=10)
    return _save(fig, path)


def token_histograms(action_tokens: np.ndarray, codebook_size: int) -> np.ndarray:
    """Counts of each code at each position: int64 ``[16, codebook_size]``.

    Args:
      action_tokens: int ``[N, P]`` (P = 16 positions), values in ``[0, codebook_size)``.
    """
    tokens = np.asarray(action_tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"action_tokens: expected an int array [N, positions], got "
                         f"{tokens.dtype} {tokens.shape}")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= codebook_size):
        raise ValueError(f"action_tokens: values must lie in [0, {codebook_size}), got "
                         f"[{tokens.min()}, {tokens.max()}]")
    counts = np.zeros((tokens.shape[1], codebook_size), dtype=np.int64)
    for position in range(tokens.shape[1]):
        counts[position] = np.bincount(tokens[:, position], minlength=codebook_size)
    return counts


def plot_codebook_usage(action_tokens: np.ndarray, codebook_size: int,
                        path: PathLike) -> epath.Path:
    """Histogram of how often each codebook entry is used, over all clips and positions.

    Args:
      action_tokens: int ``[N, 16]``.
    """
    counts = token_histograms(action_tokens, codebook_size).sum(axis=0)
    probs = counts / max(counts.sum(), 1)
    nonzero = probs[probs > 0]
    perplexity = float(np.exp(-(nonzero * np.log(nonzero)).sum())) if nonzero.size else 0.0
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(np.arange(codebook_size), counts, color="tab:blue")
    ax.set_xlabel("code")
    ax.set_ylabel("count")
    ax.set_xlim(-0.7, codebook_size - 0.3)
    ax.set_title(f"Codebook usage: {int((counts > 0).sum())}/{codebook_size} codes in use, "
                 f"perplexity {perplexity:.1f}", fontsize=10)
    return _save(fig, path)


def plot_position_token_frequency(action_tokens: np.ndarray, codebook_size: int,
                                  path: PathLike) -> epath.Path:
    """Heatmap of code frequency per token position (rows = 16 positions, columns = codes).

    Each row is normalised to sum to 1, so a row shows which codes that position prefers
    (the paper's "position-dependent token semantics").
    """
    counts = token_histograms(action_tokens, codebook_size).astype(np.float64)
    freq = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(8, 4))
    image = ax.imshow(freq, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xlabel("code")
    ax.set_ylabel("token position")
    ax.set_yticks(range(freq.shape[0]))
    ax.tick_params(axis="y", labelsize=7)
    fig.colorbar(image, ax=ax, label="frequency within position")
    ax.set_title("Per-position token frequency", fontsize=10)
    return _save(fig, path)


def plot_confusion_matrices(matrices: Mapping[str, np.ndarray], label_names: Sequence[str],
                            path: PathLike) -> epath.Path:
    """One panel per subset (e.g. ``overall``, ``casme2``, ``samm``, ``smic``).

    Args:
      matrices: name -> int ``[K, K]`` counts, rows = true class, columns = predicted.
      label_names: the K class names in label order.
    """
    if not matrices:
        raise ValueError("plot_confusion_matrices: no matrices given")
    k = len(label_names)
    for name, matrix in matrices.items():
        if np.shape(matrix) != (k, k):
            raise ValueError(f"confusion matrix {name!r}: expected shape ({k}, {k}) for "
                             f"labels {list(label_names)}, got {np.shape(matrix)}")
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.3 * len(matrices), 3.3),
                             squeeze=False)
    for ax, (name, matrix) in zip(axes[0], matrices.items()):
        matrix = np.asarray(matrix)
        # Colour by row-normalised recall so small and large subsets read the same way.
        recall = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
        ax.imshow(recall, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, str(int(matrix[i, j])), ha="center", va="center",
                        color="white" if recall[i, j] > 0.5 else "black", fontsize=9)
        ax.set_xticks(range(k), label_names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), label_names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_title(f"{name} (n={int(matrix.sum())})", fontsize=10)
    axes[0, 0].set_ylabel("true")
    return _save(fig, path)


def plot_pooling_weights(attention: np.ndarray, labels: np.ndarray,
                         label_names: Sequence[str], path: PathLike, *,
                         position_label: str = "token position") -> epath.Path:
    """Sparse pooling weights over the 16 token positions, mean ± std per class.

    Args:
      attention: float ``[N, 16]`` pooling weights (rows sum to 1).
      labels: int ``[N]`` class indices into ``label_names``.
      position_label: what a position is (the x axis): a token, or with the released token
        layout a decoder-context row that mixes all 16 tokens.
    """
    attention = np.asarray(attention, dtype=np.float64)
    labels = np.asarray(labels)
    if attention.ndim != 2 or labels.shape != attention.shape[:1]:
        raise ValueError(f"expected attention [N, positions] and labels [N], got "
                         f"{attention.shape} and {labels.shape}")
    positions = np.arange(attention.shape[1])
    fig, ax = plt.subplots(figsize=(7, 3.2))
    width = 0.8 / max(len(label_names), 1)
    for index, name in enumerate(label_names):
        rows = attention[labels == index]
        if len(rows) == 0:
            continue
        ax.bar(positions + (index - (len(label_names) - 1) / 2) * width, rows.mean(axis=0),
               width, yerr=rows.std(axis=0), capsize=1.5, label=f"{name} (n={len(rows)})")
    ax.set_xticks(positions)
    ax.set_xlabel(position_label)
    ax.set_ylabel("pooling weight")
    ax.legend(fontsize=8)
    ax.set_title("Sparse attention pooling weights per class (mean ± std over clips)",
                 fontsize=10)
    return _save(fig, path)


def amplified_differences(neutral_faces: np.ndarray, transferred: np.ndarray
                          ) -> tuple[np.ndarray, float]:
    """What the transferred actions moved: ``transferred [F, K, H, W, C]`` minus each
    face ``neutral_faces [F, H, W, C]``, averaged over channels -> ``[F, K, H, W]``, and
    the largest magnitude over the whole grid (one colour scale for every cell, so cells
    compare; 0.0 when nothing moved)."""
    difference = (np.asarray(transferred, np.float32)
                  - np.asarray(neutral_faces, np.float32)[:, None]).mean(axis=-1)
    return difference, float(np.abs(difference).max()) if difference.size else 0.0


def plot_transfer_grid(neutral_faces: np.ndarray, transferred: np.ndarray, path: PathLike, *,
                       clip_apex: np.ndarray | None = None,
                       clip_titles: Sequence[str] | None = None,
                       title: str = "Clip actions applied to new faces") -> epath.Path:
    """The slide's experiment: a clip's (most-attended) action applied to new faces.

    Columns are clips. For each new face there are two rows: the face decoded with each
    clip's action (first column: the neutral face, the source the decoder is conditioned
    on), then the amplified difference from the neutral face on a blue-white-red scale
    shared by the whole grid (:func:`amplified_differences`), because a micro-expression
    moves a face by a few grey levels that the frames alone do not show. An optional
    first row shows each clip's own apex frame for reference.

    Args:
      neutral_faces: ``[F, H, W, C]``.
      transferred: ``[F, K, H, W, C]``: face f with clip k's action.
      clip_apex: optional ``[K, H, W, C]``.
      clip_titles: optional K column titles (e.g. clip id and label).
      title: the figure title (what was transferred).
    """
    neutral_faces = _check_frames("neutral_faces", neutral_faces)
    transferred = np.asarray(transferred, dtype=np.float32)
    num_faces, num_clips = transferred.shape[:2]
    if transferred.ndim != 5 or num_faces != len(neutral_faces) or \
            transferred.shape[2:] != neutral_faces.shape[1:]:
        raise ValueError(f"transferred: expected [F={len(neutral_faces)}, K, "
                         f"{', '.join(map(str, neutral_faces.shape[1:]))}], got "
                         f"{transferred.shape}")
    if clip_titles is not None and len(clip_titles) != num_clips:
        raise ValueError(f"clip_titles: expected {num_clips} titles, got {len(clip_titles)}")
    difference, scale = amplified_differences(neutral_faces, transferred)
    top = 1 if clip_apex is not None else 0
    rows = top + 2 * num_faces
    fig, axes = plt.subplots(rows, num_clips + 1,
                             figsize=(1.3 * (num_clips + 1), 1.3 * rows + 0.6), squeeze=False)
    if clip_apex is not None:
        clip_apex = _check_frames("clip_apex", clip_apex)
        axes[0, 0].axis("off")
        axes[0, 0].text(0.5, 0.5, "clip apex", ha="center", va="center", fontsize=8)
        for col in range(num_clips):
            _show_face(axes[0, col + 1], clip_apex[col])
    gain = f"x{1.0 / scale:.0f}" if scale > 0 else "no change"
    for face in range(num_faces):
        row = top + 2 * face
        _show_face(axes[row, 0], neutral_faces[face])
        axes[row + 1, 0].axis("off")
        axes[row + 1, 0].text(0.5, 0.5, f"difference\n{gain}", ha="center", va="center",
                              fontsize=8)
        for col in range(num_clips):
            _show_face(axes[row, col + 1], transferred[face, col])
            cell = axes[row + 1, col + 1]
            cell.imshow(difference[face, col], cmap="RdBu_r", vmin=-max(scale, 1e-12),
                        vmax=max(scale, 1e-12))
            cell.set_xticks([])
            cell.set_yticks([])
    axes[top, 0].set_title("neutral face", fontsize=8)
    for col in range(num_clips):
        name = clip_titles[col] if clip_titles is not None else f"clip {col}"
        axes[0, col + 1].set_title(name, fontsize=7)
    note = (f"difference rows: transferred - neutral face, full colour = {scale:.3g} of the "
            "grey range (red brighter, blue darker)" if scale > 0 else
            "difference rows: the transferred actions changed no pixel")
    fig.suptitle(f"{title}\n{note}", fontsize=9, y=1.0 + 0.2 / rows)
    return _save(fig, path)


def plot_training_curves(records: Sequence[Mapping], path: PathLike, *,
                         keys: Sequence[str] | None = None,
                         title: str = "Training curves") -> epath.Path:
    """One panel per metric against ``step`` (records of a ``metrics.jsonl``).

    Args:
      records: dicts with a ``step`` field and numeric metrics.
      keys: metrics to draw; by default those of :data:`DEFAULT_CURVE_KEYS` present, else
        every numeric field.
    """
    records = [r for r in records if "step" in r]
    if not records:
        raise ValueError("plot_training_curves: no records with a 'step' field")
    numeric = [k for k in records[0]
               if k != "step" and isinstance(records[0][k], (int, float))
               and not isinstance(records[0][k], bool)]
    if keys is None:
        keys = [k for k in DEFAULT_CURVE_KEYS if any(k in r for r in records)] or numeric
    keys = [k for k in keys if any(k in r for r in records)]
    if not keys:
        raise ValueError("plot_training_curves: none of the requested metrics are present")
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        steps, values = zip(*points)
        ax.plot(steps, values, color="tab:blue", linewidth=1.2)
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10, y=1.0 + 0.06 / rows)
    return _save(fig, path)
