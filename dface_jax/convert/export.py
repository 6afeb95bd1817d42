"""Released PyTorch checkpoint -> a dface-jax workdir that the rest of the library reads.

``import_checkpoint(path, kind, out_dir)`` reads a state dict (``.npz``, ``.safetensors``, or a
PyTorch pickle with the ``torch`` extra), converts it with :mod:`dface_jax.convert.tokenizer` or
:mod:`dface_jax.convert.classifier` (which refuse mismatched keys or shapes, naming the first
ones), and writes the same layout the training commands write:

- ``kind="tokenizer"``: a tokenizer workdir (manifest kind ``tokenizer``, as ``dface-jax
  pretrain`` writes). ``config.json`` holds the ``tokenizer`` field
  (every :class:`TokenizerConfig` field, inferred from the weights, with the released-behaviour
  flags) and ``checkpoints/0/state`` holds ``{"params": ...}``. ``load_tokenizer(W)`` and
  ``extract-tokens --tokenizer W`` read it.
- ``kind="classifier"``: a LOSO workdir (manifest kind ``loso``) with a single fold.
  ``config.json`` holds ``model="dface"`` and the ``classifier`` field; the manifest names the
  tokenizer workdir, if given; the checkpoint's params carry a leading
  fold axis of size 1; ``folds.json`` names the fold's held-out subject
  (:data:`IMPORTED_HELD_OUT_SUBJECT`: imported weights hold out nobody); ``results.json``
  records ``label_names`` but no scores, because none were measured. ``load_classifier(W)``
  reads it.

Both workdirs also record where the weights came from (``config.json`` ``imported_from``).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import ml_collections
import numpy as np
from etils import epath

from data_pipelines import storage
from data_pipelines.errors import InputError
from dface_jax.convert.classifier import classifier_config_from_state_dict, convert_classifier
from dface_jax.convert.state_dict import load_state_dict
from dface_jax.convert.tokenizer import convert_tokenizer_state_dict, tokenizer_config_from_state_dict
from dface_jax.runtime.checkpoint import save_params
from dface_jax.workdir import (COMPLETED_FILE, FOLDS_FILE, RESULTS_FILE, write_manifest,
                               write_tokenizer)

KINDS = ("tokenizer", "classifier")
# The release's classifier (models/Exp_CLIP.py) uses 8 heads; heads are not in the weights.
RELEASED_CLASSIFIER_HEADS = 8
IMPORTED_HELD_OUT_SUBJECT = "none (imported weights)"


class ImportCheckpointError(InputError, ValueError):
    """The checkpoint cannot become the requested workdir (an option contradicts the weights,
    the labels are unknown, or the output directory is already in use)."""


def _check_out_dir(out_dir: epath.Path) -> None:
    """Refuses a directory that already holds a workdir: a second import would mix weights."""
    taken = [name for name in ("manifest.json", "config.json", "checkpoints")
             if (out_dir / name).exists()]
    if taken:
        raise ImportCheckpointError(
            f"{out_dir} already holds {', '.join(taken)}; import into a new directory")


def _provenance(path: storage.PathLike, kind: str, prefix: str) -> dict[str, str]:
    return {"checkpoint": storage.absolute(path), "kind": kind, "prefix": prefix}


def _require_matches(source: str, what: str, inferred: Any, requested: Any, hint: str) -> None:
    if requested is not None and requested != inferred:
        raise ImportCheckpointError(
            f"{source}: the weights make a tokenizer with {what} {inferred}, not {requested} "
            f"as requested; {hint}")


def write_tokenizer_workdir(state_dict: Mapping[str, np.ndarray], out_dir: storage.PathLike, *,
                            source: str, image_size: int | None = None,
                            channels: int | None = None, heads: int | None = None,
                            overrides: Mapping[str, Any] | None = None,
                            provenance: Mapping[str, str] | None = None):
    """Converts a released ``LatentActionQuantization`` state dict and writes a pretraining
    tokenizer workdir. Returns the :class:`TokenizerConfig`.

    Args:
      state_dict: key -> array in PyTorch layout.
      out_dir: the workdir to create (must not hold a workdir yet).
      source: names the checkpoint in errors.
      image_size, channels, heads: optional expectations; the weights determine these sizes,
        so a value that differs is an error rather than an override.
      overrides: :class:`TokenizerConfig` fields the weights do not determine (e.g.
        ``quantizer="straight_through"`` to fine-tune, ``dtype="bfloat16"``).
      provenance: recorded as ``config.json`` ``imported_from``.
    """
    out_dir = storage.as_path(out_dir)
    _check_out_dir(out_dir)
    config = tokenizer_config_from_state_dict(state_dict, **dict(overrides or {}))
    _require_matches(source, "image size", config.image_size, image_size,
                     "the frame size follows from the patch size and the number of stride-2 convs")
    _require_matches(source, "channels", config.channels, channels,
                     "gray frames feed an RGB tokenizer by repeating the channel")
    _require_matches(source, "heads", config.heads, heads,
                     "the head count follows from the cross-attention null key/values")
    params, config = convert_tokenizer_state_dict(state_dict, config, source=source)
    workdir_config = ml_collections.ConfigDict({"tokenizer": config.to_dict()})
    if provenance:
        workdir_config.imported_from = dict(provenance)
    write_tokenizer(out_dir, params, workdir_config, "import-torch", inputs={"checkpoint": source})
    return config


def write_classifier_workdir(state_dict: Mapping[str, np.ndarray], out_dir: storage.PathLike, *,
                             source: str, label_names: Sequence[str] | None = None,
                             heads: int | None = None, tokenizer_workdir: str | None = None,
                             overrides: Mapping[str, Any] | None = None,
                             provenance: Mapping[str, str] | None = None):
    """Converts a released ``VQCodeTransformer`` state dict and writes a one-fold LOSO workdir.
    Returns the :class:`ClassifierConfig`.

    Args:
      label_names: the class names in logit order. The weights only give their number K;
        when None and K is 3, the composite set's order (negative, positive, surprise).
      heads: attention heads (not recorded in the weights); None = the release's 8.
      tokenizer_workdir: the tokenizer whose action vectors the classifier reads; recorded in
        the manifest so ``load_classifier(W)`` can embed int tokens.
      overrides: other :class:`ClassifierConfig` fields (``pooling``, ``dropout``).
    """
    out_dir = storage.as_path(out_dir)
    _check_out_dir(out_dir)
    heads = RELEASED_CLASSIFIER_HEADS if heads is None else heads
    try:
        config = classifier_config_from_state_dict(state_dict, heads=heads, **dict(overrides or {}))
        variables = convert_classifier(state_dict, config)
    except ValueError as error:  # the messages list the keys; name the file too
        raise type(error)(f"{source}: {error}") from None
    label_names = _classifier_label_names(source, config.num_classes, label_names)
    # LOSO workdirs stack every fold's parameters on a leading axis; this one has one fold.
    fold_params = jax.tree.map(lambda leaf: np.asarray(leaf)[None], variables["params"])
    workdir_config = ml_collections.ConfigDict({"model": "dface", "finetune_tokenizer": False,
                                                "classifier": config.to_dict()})
    if provenance:
        workdir_config.imported_from = dict(provenance)
    save_params(out_dir, fold_params, workdir_config)
    folds = {"held_out_subjects": [IMPORTED_HELD_OUT_SUBJECT],
             "folds": [{"fold": 0, "held_out_subject": IMPORTED_HELD_OUT_SUBJECT,
                        "test_clips": 0, "train_clips": 0}]}
    storage.write_json(out_dir / FOLDS_FILE, folds)
    results = {"model": "dface", "label_names": list(label_names), "num_folds": 1,
               "imported_from": dict(provenance or {"checkpoint": source}),
               "note": "imported weights: no LOSO scores were measured"}
    storage.write_json(out_dir / RESULTS_FILE, results)
    inputs = {"checkpoint": source}
    if tokenizer_workdir:
        inputs["tokenizer_workdir"] = storage.absolute(tokenizer_workdir)
    write_manifest(out_dir, "loso", "import-torch", inputs=inputs)
    storage.write_json(out_dir / COMPLETED_FILE, {"command": "import-torch"})
    return config


def _classifier_label_names(source: str, num_classes: int,
                            label_names: Sequence[str] | None) -> tuple[str, ...]:
    if label_names is None:
        from data_pipelines.me.datasets import label_names as dataset_label_names

        composite = dataset_label_names("composite")
        if num_classes != len(composite):
            raise ImportCheckpointError(
                f"{source}: the classifier has {num_classes} classes; give their names in logit "
                f"order (--label-names a,b,...); only 3 classes default to {composite}")
        return tuple(composite)
    label_names = tuple(str(name) for name in label_names)
    if len(label_names) != num_classes:
        raise ImportCheckpointError(
            f"{source}: the classifier has {num_classes} classes, but {len(label_names)} label "
            f"names were given: {label_names}")
    return label_names


def import_checkpoint(path: storage.PathLike, kind: str, out_dir: storage.PathLike, *,
                      prefix: str = "", heads: int | None = None, image_size: int | None = None,
                      channels: int | None = None, label_names: Sequence[str] | None = None,
                      tokenizer_workdir: str | None = None,
                      overrides: Mapping[str, Any] | None = None) -> epath.Path:
    """Reads the state dict at ``path`` and writes a workdir of ``kind`` to ``out_dir``.

    Args:
      path: ``.npz``, ``.safetensors``, or ``.pt``/``.pth``/``.bin``/``.ckpt`` (needs the
        ``torch`` extra) holding a released state dict.
      kind: ``"tokenizer"`` (``LatentActionQuantization``, e.g. ``vae.736000.pt``) or
        ``"classifier"`` (``VQCodeTransformer``).
      prefix: keep only keys under this prefix, dropping it (``"tokenizer/"`` in the parity
        fixture); a DataParallel ``module.`` is removed either way.
      heads: classifier heads (default 8, as released); for a tokenizer, an expectation checked
        against the weights. image_size, channels: tokenizer expectations, checked likewise.
      label_names, tokenizer_workdir: classifier only, see :func:`write_classifier_workdir`.
      overrides: config fields the weights do not determine.
    Returns:
      ``out_dir``.
    Raises:
      StateDictMismatchError naming the first missing / unexpected / mis-shaped keys;
      ImportError naming the ``torch`` extra for a PyTorch file without PyTorch;
      ImportCheckpointError for contradicting options or an occupied ``out_dir``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}; expected one of {KINDS}")
    path, out_dir = storage.as_path(path), storage.as_path(out_dir)
    state_dict = load_state_dict(path, prefix=prefix)
    source = f"{path}" + (f" (keys under {prefix!r})" if prefix else "")
    provenance = _provenance(path, kind, prefix)
    if kind == "tokenizer":
        if label_names is not None or tokenizer_workdir is not None:
            raise ImportCheckpointError("label_names and tokenizer_workdir apply to a classifier")
        write_tokenizer_workdir(state_dict, out_dir, source=source, image_size=image_size,
                                channels=channels, heads=heads, overrides=overrides,
                                provenance=provenance)
    else:
        if image_size is not None or channels is not None:
            raise ImportCheckpointError("image_size and channels apply to a tokenizer")
        write_classifier_workdir(state_dict, out_dir, source=source, label_names=label_names,
                                 heads=heads, tokenizer_workdir=tokenizer_workdir,
                                 overrides=overrides, provenance=provenance)
    return out_dir
