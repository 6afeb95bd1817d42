"""Load trained models from their workdirs, for a notebook or a script.

    tok = load_tokenizer("runs/quick/pretrain")
    tokens = tok.encode(onset, apex)                 # int32 [B, 16]
    frames = tok.decode(onset, tokens)               # [B, H, W, C]
    moved = tok.transfer(tokens, new_faces)          # the clips' actions on other faces
    part = tok.transfer(tokens, new_faces, keep=top)  # only the context rows in keep [B, 16]
    clf = load_classifier("runs/quick/loso", fold="casme2/sub01", tokenizer=tok)
    clf.predict(tokens)                              # int32 [B]
    clf.attention(tokens)                            # float32 [B, 16] pooling weights

Both loaders read the workdir through :mod:`dface_jax.workdir` (its manifest and
``config.json``; no config file is needed) and restore the parameters as host numpy arrays,
so checkpoints written on a GPU or a TPU pod load on a CPU. The model code is the library's own (``encode_actions`` & co. and
``TokenClassifier``); these classes only hold parameters and batch the calls.

The classifier reads action vectors ``[B, 16, D]`` (what the token cache stores as
``action_vectors``). It also accepts int tokens ``[B, 16]``; turning those into vectors
needs the tokenizer that made them, found in this order: the ``tokenizer`` argument, else
the tokenizer workdir recorded in the LOSO run's manifest (``inputs.tokenizer_workdir``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from etils import epath

from data_pipelines import storage
from dface_jax import workdir as workdir_lib
from dface_jax.runtime.batching import apply_in_batches
from dface_jax.tokens.extract import match_channels

PathLike = storage.PathLike


def _as_frames(name: str, frames: Any) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4:
        raise ValueError(f"{name}: expected frames [B, H, W, C] (or one [H, W, C]), "
                         f"got shape {frames.shape}")
    return frames


def _as_tokens(tokens: Any) -> np.ndarray:
    tokens = np.asarray(tokens)
    if tokens.ndim == 1:
        tokens = tokens[None]
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"expected int action tokens [B, 16], got {tokens.dtype} {tokens.shape}")
    return tokens.astype(np.int32)


def mix_context_rows(clip_vectors: np.ndarray, other_vectors: np.ndarray,
                     keep: np.ndarray) -> np.ndarray:
    """[B, 16, D] decoder context: ``clip_vectors``' rows where ``keep`` [B, 16] is True,
    ``other_vectors``' rows elsewhere."""
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != clip_vectors.shape[:2] or other_vectors.shape != clip_vectors.shape:
        raise ValueError(f"keep {keep.shape} must be [B, rows] of the contexts "
                         f"{clip_vectors.shape} and {other_vectors.shape} (equal shapes)")
    return np.where(keep[..., None], clip_vectors, other_vectors)


class Tokenizer:
    """A restored C-VQ-VAE tokenizer: ``config`` (TokenizerConfig), ``params`` (numpy tree).

    All methods take and return numpy arrays; frames are float32 in [0, 1].
    """

    def __init__(self, config: Any, params: Any, workdir: PathLike | None = None,
                 *, batch_size: int = 64):
        from dface_jax.models import tokenizer as tokenizer_lib

        self.config = config
        self.params = params
        self.workdir = None if workdir is None else storage.as_path(workdir)
        self.batch_size = batch_size
        # The config is a frozen dataclass, so it can be closed over by jit.
        self._encode = jax.jit(lambda p, s, d: tokenizer_lib.encode_actions(p, config, s, d))
        self._decode = jax.jit(lambda p, s, t: tokenizer_lib.decode_actions(p, config, s, t))
        self._decode_vectors = jax.jit(
            lambda p, s, v: tokenizer_lib.decode_action_vectors(p, config, s, v))
        self._embed = jax.jit(lambda p, t: tokenizer_lib.embed_actions(p, config, t))

    def _frames(self, name: str, frames: Any) -> np.ndarray:
        # Gray frames feed an RGB tokenizer (the released one) by repeating the channel, as
        # token extraction does (train.extract.match_channels).
        return np.asarray(match_channels(_as_frames(name, frames), self.config.channels))

    def encode(self, onset: np.ndarray, apex: np.ndarray) -> np.ndarray:
        """(onset, apex) frames ``[B, H, W, C]`` -> action tokens int32 ``[B, 16]``."""
        onset, apex = self._frames("onset", onset), self._frames("apex", apex)
        return apply_in_batches(lambda s, d: self._encode(self.params, s, d), onset, apex,
                                batch_size=self.batch_size).astype(np.int32)

    def decode(self, source: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        """Source frames ``[B, H, W, C]`` + tokens ``[B, 16]`` -> driving frames ``[B, H, W, C]``."""
        source, tokens = self._frames("source", source), _as_tokens(tokens)
        return apply_in_batches(lambda s, t: self._decode(self.params, s, t), source, tokens,
                                batch_size=self.batch_size)

    def decode_vectors(self, source: np.ndarray, action_vectors: np.ndarray) -> np.ndarray:
        """Source frames ``[B, H, W, C]`` + decoder context ``[B, 16, D]`` (what :meth:`embed`
        returns) -> driving frames ``[B, H, W, C]``."""
        source = self._frames("source", source)
        action_vectors = np.asarray(action_vectors, np.float32)
        return apply_in_batches(lambda s, v: self._decode_vectors(self.params, s, v), source,
                                action_vectors, batch_size=self.batch_size)

    def embed(self, tokens: np.ndarray) -> np.ndarray:
        """Tokens ``[B, 16]`` -> the hard-quantized action vectors ``[B, 16, D]`` the
        classifier reads."""
        tokens = _as_tokens(tokens)
        return apply_in_batches(lambda t: self._embed(self.params, t), tokens,
                                batch_size=self.batch_size)

    def neutral_tokens(self, faces: np.ndarray) -> np.ndarray:
        """The tokens of "no action" for each face: ``encode(face, face)``, ``[B, 16]``."""
        faces = _as_frames("faces", faces)
        return self.encode(faces, faces)

    def transfer(self, tokens: np.ndarray, new_faces: np.ndarray, *,
                 keep: np.ndarray | None = None) -> np.ndarray:
        """Re-applies clips' actions to other faces: decode with ``new_faces`` as the source.

        Args:
          tokens: ``[B, 16]`` (or one ``[16]``) tokens of clips.
          new_faces: ``[B, H, W, C]``, or one ``[H, W, C]`` face used for every clip.
          keep: optional bool ``[B, 16]``: rows of the decoder context to transfer, e.g. the
            most-attended ones (the classifier's attention pooling weighs these same rows:
            it reads the context as its action vectors); the other rows are the new face's
            own "no action" context (:meth:`embed` of :meth:`neutral_tokens`), so only the
            kept part of the action moves the face. With the clean token layout row i is
            token i alone, so this keeps tokens; with ``released_token_layout`` every row
            holds part of all 16 codes (``models.tokenizer.released_layout``), so keeping
            token i would change every row, and the rows, not tokens, are what is kept.
        Returns:
          ``[B, H, W, C]`` frames.
        """
        tokens, new_faces = _as_tokens(tokens), _as_frames("new_faces", new_faces)
        if len(new_faces) == 1 and len(tokens) > 1:
            new_faces = np.repeat(new_faces, len(tokens), axis=0)
        vectors = self.embed(tokens)
        if keep is not None:
            keep = np.broadcast_to(np.asarray(keep, dtype=bool), tokens.shape)
            vectors = mix_context_rows(vectors, self.embed(self.neutral_tokens(new_faces)), keep)
        return self.decode_vectors(new_faces, vectors)


class Classifier:
    """One LOSO fold's restored token classifier.

    Attributes: ``config`` (ClassifierConfig), ``params`` (this fold's numpy tree),
    ``fold`` (index), ``held_out_subject``, ``label_names``, ``tokenizer`` (or None).
    """

    def __init__(self, config: Any, params: Any, *, fold: int, held_out_subject: str | None,
                 label_names: Sequence[str], tokenizer: Tokenizer | None = None,
                 tokenizer_workdir: PathLike | None = None, batch_size: int = 256):
        from dface_jax.models.token_classifier import TokenClassifier

        self.config = config
        self.params = params
        self.fold = fold
        self.held_out_subject = held_out_subject
        self.label_names = tuple(label_names)
        self.tokenizer = tokenizer
        self.tokenizer_workdir = tokenizer_workdir
        self.batch_size = batch_size
        model = TokenClassifier(config)
        self._apply = jax.jit(
            lambda p, v: model.apply({"params": p}, v, train=False))

    def action_vectors(self, inputs: np.ndarray) -> np.ndarray:
        """Float action vectors ``[B, 16, D]`` pass through; int tokens ``[B, 16]`` are
        embedded with the tokenizer (loaded from the recorded workdir if not given)."""
        inputs = np.asarray(inputs)
        if np.issubdtype(inputs.dtype, np.integer):
            if self.tokenizer is None:
                if self.tokenizer_workdir is None:
                    raise ValueError(
                        "int tokens need the tokenizer that made them: pass "
                        "load_classifier(..., tokenizer=load_tokenizer(W)), or give action "
                        "vectors [B, 16, D] (the token cache's 'action_vectors')")
                self.tokenizer = load_tokenizer(self.tokenizer_workdir)
            return self.tokenizer.embed(inputs)
        if inputs.ndim != 3:
            raise ValueError(f"expected action vectors [B, 16, D] or int tokens [B, 16], "
                             f"got {inputs.dtype} {inputs.shape}")
        return inputs.astype(np.float32)

    def outputs(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        """The model's outputs without dropout: ``logits [B, K]``, ``text_features
        [B, D_text]``, ``attention [B, 16]`` (the scalar ``pooling_entropy`` is dropped: it is a
        batch statistic)."""
        vectors = self.action_vectors(inputs)

        def run(v):
            out = self._apply(self.params, v)
            return {k: out[k] for k in ("logits", "text_features", "attention")}

        return apply_in_batches(run, vectors, batch_size=self.batch_size)

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """``[B, K]`` class logits."""
        return self.outputs(inputs)["logits"]

    def attention(self, inputs: np.ndarray) -> np.ndarray:
        """``[B, 16]`` sparse pooling weights over the token positions."""
        return self.outputs(inputs)["attention"]

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        """``[B]`` int32 predicted class indices (into ``label_names``)."""
        return np.argmax(self.logits(inputs), axis=-1).astype(np.int32)


def load_tokenizer(workdir: PathLike, *, step: int | None = None) -> Tokenizer:
    """Restores the tokenizer of a tokenizer workdir (``pretrain`` or ``import-torch``):
    its config and the latest (or ``step``) checkpoint's params as host numpy arrays."""
    params, tokenizer_config = workdir_lib.restore_tokenizer(workdir, step)
    return Tokenizer(tokenizer_config, params, workdir)


def _fold_index(fold: int | str, subjects: Sequence[str], workdir: epath.Path) -> int:
    if isinstance(fold, str):
        if fold not in subjects:
            raise KeyError(f"{workdir / workdir_lib.FOLDS_FILE}: no fold holds out subject "
                           f"{fold!r}; subjects are {list(subjects)[:10]}...")
        return list(subjects).index(fold)
    if not 0 <= fold < len(subjects):
        raise IndexError(f"fold {fold} out of range: {workdir} has {len(subjects)} folds")
    return int(fold)


def load_classifier(workdir: PathLike, fold: int | str = 0, *,
                    tokenizer: Tokenizer | None = None, step: int | None = None) -> Classifier:
    """Restores one fold of a LOSO run's classifier.

    Args:
      workdir: the LOSO workdir (manifest, ``config.json``, ``folds.json``, ``checkpoints/``
        holding every fold's parameters stacked on a leading fold axis).
      fold: the fold index, or the held-out subject id (e.g. ``"casme2/sub01"``).
      tokenizer: used to embed int tokens; if None, the tokenizer workdir recorded in the
        run's manifest is loaded on first need, or, for a run with ``finetune_tokenizer``,
        this fold's fine-tuned tokenizer (``classifier.tokenizer``).
    """
    from dface_jax.models.token_classifier import ClassifierConfig
    from dface_jax.runtime.checkpoint import restore_params

    workdir = storage.as_path(workdir)
    manifest = workdir_lib.read_manifest(workdir, "loso")
    config = workdir_lib.read_config(workdir)
    if config.model != "dface":
        raise workdir_lib.WorkdirError(
            f"{workdir} trained model {config.model!r}; load_classifier restores the token "
            "classifier (model 'dface') only")
    classifier_config = ClassifierConfig.from_dict(config.classifier.to_dict())
    subjects = workdir_lib.read_folds(workdir)
    index = _fold_index(fold, subjects, workdir)
    stacked = restore_params(workdir, step)
    leading = {np.shape(x)[0] for x in jax.tree.leaves(stacked)}
    if leading != {len(subjects)}:
        raise ValueError(f"{workdir}: checkpoint leaves have leading sizes {sorted(leading)}, "
                         f"expected one fold axis of {len(subjects)} ({workdir_lib.FOLDS_FILE})")
    params = jax.tree.map(lambda x: np.asarray(x[index]), stacked)
    label_names = workdir_lib.read_results(workdir)["label_names"]
    if config.finetune_tokenizer:
        # Every fold fine-tuned its own copy of the tokenizer: its tokens are that copy's.
        from dface_jax.models.tokenizer import TokenizerConfig
        if tokenizer is None:
            tokenizer = Tokenizer(TokenizerConfig.from_dict(config.tokenizer.to_dict()),
                                  params["tokenizer"])
        params = params["classifier"]
    return Classifier(classifier_config, params, fold=index, held_out_subject=subjects[index],
                      label_names=label_names, tokenizer=tokenizer,
                      tokenizer_workdir=manifest["inputs"].get("tokenizer_workdir") or None)
