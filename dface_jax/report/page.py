"""The report of a run: every picture of :mod:`.figures` plus a static ``index.html``.

:func:`report_for_workdir` takes any workdir (tokenizer, LOSO, comparison, quickstart),
finds its parts through its manifest (:func:`find_run`) and calls :func:`build_report`,
which draws every picture whose inputs exist and lists the others as missing, with the
reason. Workdirs, the token cache and the report folder may be local or ``gs://``.

Where each picture's arrays come from:
  * training curves: ``metrics.jsonl`` of the pretraining (and LOSO) workdir;
  * reconstructions: the tokenizer on fresh SynthFACS talking-face pairs (a seed the
    pretraining never drew), at the tokenizer's image size;
  * codebook usage and per-position frequency: the token cache's ``action_tokens`` (the
    ME clips), else tokens of those SynthFACS pairs;
  * confusion matrices (overall and per dataset): the LOSO run's ``predictions.npz``;
  * pooling weights per class: ``predictions.npz`` ``attention`` (each clip scored by the
    fold that held it out);
  * transfer grid (the slide's experiment): for the clips of each class whose pooling is
    most concentrated, the ``top_k`` most-attended rows of the decoder context (the rows the
    classifier's pooling weighs) are applied to new SynthFACS neutral faces; the other rows
    are the new face's own "no action" context (``Tokenizer.transfer(keep=...)``). With the
    released token layout a row is not a token (each row holds part of every code), so rows,
    not token indices, are what is kept. Under each face, its amplified difference from the
    neutral face shows what moved.
"""

from __future__ import annotations

import dataclasses
import html
import io
import os
from typing import Any

import numpy as np
from etils import epath

from data_pipelines import storage

from dface_jax import workdir as workdir_lib
from dface_jax.metrics import confusion_matrices
from dface_jax.report import figures
from dface_jax.runtime.metrics_log import METRICS_FILE, read_metrics

PathLike = storage.PathLike

# Names of the pictures in the report folder, in page order.
PICTURES = {
    "pretrain_curves": "Tokenizer pretraining curves",
    "reconstructions": "Reconstructions (source / driving / reconstruction)",
    "codebook_usage": "Codebook usage",
    "position_frequency": "Per-position token frequency",
    "confusion_matrices": "LOSO confusion matrices",
    "pooling_weights": "Sparse pooling weights per class",
    "transfer_grid": "Most-attended part of a clip's action applied to new faces",
    "loso_curves": "LOSO training curves",
}

# Seed of the SynthFACS clips drawn for the report; distinct from the training seeds.
REPORT_SEED = 90210


@dataclasses.dataclass
class RunPaths:
    """The parts of a run that exist (None where absent)."""

    root: epath.Path
    pretrain: epath.Path | None = None
    tokens: epath.Path | None = None
    loso: epath.Path | None = None
    comparison: epath.Path | None = None


def find_run(workdir: PathLike) -> RunPaths:
    """The parts of the run in ``workdir``, read from its manifest: a tokenizer workdir,
    a LOSO workdir (its token cache and tokenizer as recorded), a comparison (its D-FACE
    run) or a quickstart folder (all of them)."""
    root = storage.as_path(workdir)
    manifest = workdir_lib.read_manifest(root)
    kind = manifest["kind"]
    if kind == "tokenizer":
        return RunPaths(root, pretrain=root)
    if kind == "quickstart":  # its comparison names the tokens and the tokenizer
        paths = find_run(manifest["inputs"]["comparison"])
        return dataclasses.replace(paths, root=root)
    inputs = manifest["inputs"]
    tokens = storage.as_path(inputs["token_cache"]) if inputs.get("token_cache") else None
    tokenizer = (storage.as_path(inputs["tokenizer_workdir"]) if inputs.get("tokenizer_workdir")
                 else None)
    paths = RunPaths(root, tokens=tokens if tokens is not None and tokens.is_file() else None,
                     pretrain=tokenizer if tokenizer is not None and
                     workdir_lib.is_kind(tokenizer, "tokenizer") else None)
    if kind == "loso":
        paths.loso = root
    else:  # a comparison: its D-FACE run and its table
        dface = root / workdir_lib.COMPARISON_DFACE_RUN
        paths.loso = dface if workdir_lib.is_kind(dface, "loso") else None
        table = root / workdir_lib.COMPARISON_TABLE
        paths.comparison = table if table.is_file() else None
    return paths


def _synthetic_pairs(size: int, channels: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` (source, driving) pairs of fresh SynthFACS talking clips, ``[count, H, W, C]``."""
    from data_pipelines.synthetic import talking_clips

    clips = talking_clips(seed=REPORT_SEED, num_clips=count, num_frames=12, size=size)
    frames = np.asarray(clips["frames"], dtype=np.float32)
    source, driving = frames[:, 0], frames[:, -1]
    if channels == 3:
        source, driving = np.repeat(source, 3, axis=-1), np.repeat(driving, 3, axis=-1)
    return source, driving


def _neutral_faces(size: int, channels: int, count: int) -> np.ndarray:
    """``count`` new SynthFACS identities with every action unit at zero, ``[count, H, W, C]``."""
    from data_pipelines.synthetic import AU_NAMES, render_faces, sample_identities

    identities = sample_identities(REPORT_SEED + 1, count)
    faces = render_faces(identities, np.zeros((count, len(AU_NAMES)), np.float32), size=size,
                         seed=REPORT_SEED)
    faces = np.asarray(faces, dtype=np.float32)
    return np.repeat(faces, 3, axis=-1) if channels == 3 else faces


def _image_shape(tokenizer: Any) -> tuple[int, int]:
    config = tokenizer.config
    return int(config.image_size), int(config.channels)


def _transfer_clips(labels: np.ndarray, attention: np.ndarray, per_class: int = 2
                    ) -> list[int]:
    """Indices of the clips shown in the transfer grid: per class, the ``per_class`` clips
    whose pooling is most concentrated (largest top weight), so the picture shows the
    tokens the classifier relied on most."""
    chosen = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        order = np.argsort(-attention[members].max(axis=1), kind="stable")
        chosen.extend(int(i) for i in members[order[:per_class]])
    return chosen


def most_attended_rows(attention: np.ndarray, top_k: int) -> np.ndarray:
    """bool ``[B, L]``: each clip's ``top_k`` largest pooling weights (ties: the earlier
    row). The pooling weights rows of the decoder context (the classifier's action
    vectors), which are tokens only in the clean layout (``Tokenizer.transfer``)."""
    attention = np.asarray(attention)
    keep = np.zeros(attention.shape, dtype=bool)
    order = np.argsort(-attention, axis=1, kind="stable")[:, :top_k]
    np.put_along_axis(keep, order, True, axis=1)
    return keep


class _Report:
    """Collects pictures and missing-picture reasons while :func:`build_report` runs."""

    def __init__(self, out_dir: epath.Path):
        self.out_dir = out_dir
        self.pictures: dict[str, epath.Path] = {}
        self.missing: dict[str, str] = {}

    def path(self, name: str) -> epath.Path:
        return self.out_dir / f"{name}.png"

    def add(self, name: str, path: epath.Path) -> None:
        self.pictures[name] = path

    def skip(self, name: str, reason: str) -> None:
        self.missing[name] = reason


def build_report(out_dir: PathLike, *, pretrain: PathLike | None = None,
                 tokens: PathLike | None = None, loso: PathLike | None = None,
                 comparison: PathLike | None = None, top_k: int = 4, num_faces: int = 4,
                 title: str = "dface-jax report") -> dict[str, Any]:
    """Draws every picture whose inputs exist into ``out_dir`` and writes ``index.html``.

    Args:
      pretrain: a pretraining workdir (tokenizer checkpoint, ``metrics.jsonl``).
      tokens: a token cache ``.npz`` (``extract-tokens``).
      loso: a LOSO workdir of the token classifier (``predictions.npz``, ``results.json``).
      comparison: a markdown table of the method comparison.
      top_k: token positions transferred in the transfer grid.
      num_faces: new faces (rows) in the transfer grid.
    Returns:
      ``{"pictures": {name: path}, "missing": {name: reason}, "index": path}``.
    """
    out_dir = storage.as_path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = _Report(out_dir)
    pretrain = None if pretrain is None else storage.as_path(pretrain)
    loso = None if loso is None else storage.as_path(loso)
    tokenizer, tokenizer_problem = _usable_tokenizer(pretrain)
    _curves(report, "pretrain_curves", pretrain, "Tokenizer pretraining")
    _tokenizer_pictures(report, tokenizer, tokens, tokenizer_problem)
    predictions = _loso_pictures(report, loso, pooling_position_label(
        None if tokenizer is None else tokenizer.config))
    _transfer_picture(report, tokenizer, tokens, predictions, top_k, num_faces)
    _curves(report, "loso_curves", loso, "LOSO training")
    results = _results(loso)
    table = storage.as_path(comparison).read_text() if comparison else None
    index = write_index(out_dir, report.pictures, report.missing, results=results,
                        comparison=table, title=title)
    return {"pictures": report.pictures, "missing": report.missing, "index": index}


def _token_arrays(tokens: PathLike, *names: str) -> tuple[np.ndarray, ...]:
    """Arrays ``names`` of the token cache at ``tokens`` (local or remote)."""
    with np.load(io.BytesIO(storage.as_path(tokens).read_bytes()), allow_pickle=False) as data:
        return tuple(data[name] for name in names)


def _curves(report: _Report, name: str, workdir: epath.Path | None, what: str) -> None:
    if workdir is None:
        report.skip(name, f"no {what.lower()} workdir")
        return
    records = read_metrics(workdir) if (workdir / METRICS_FILE).exists() else []
    if not records:
        report.skip(name, f"{workdir / METRICS_FILE} is missing or empty")
        return
    report.add(name, figures.plot_training_curves(records, report.path(name),
                                                  title=f"{what} curves"))


def _usable_tokenizer(pretrain: epath.Path | None) -> tuple[Any, str]:
    """The tokenizer of ``pretrain`` and "", or None and why it cannot be used.

    A checkpoint whose parameter tree no longer matches the model code (written by an
    older version of the tokenizer) is reported as missing pictures, not as a crash of the
    whole report: the LOSO pictures do not need it.
    """
    if pretrain is None:
        return None, "no tokenizer checkpoint (pretraining workdir)"
    from flax import errors as flax_errors

    from dface_jax.analysis import load_tokenizer

    tokenizer = load_tokenizer(pretrain)
    size, channels = _image_shape(tokenizer)
    probe = np.zeros((1, size, size, channels), np.float32)
    try:
        tokenizer.encode(probe, probe)
    except (flax_errors.ScopeParamNotFoundError, flax_errors.ScopeParamShapeError) as err:
        return None, (f"the checkpoint in {pretrain} does not match the current tokenizer "
                      f"code ({type(err).__name__}: {str(err).splitlines()[0]})")
    return tokenizer, ""


def _tokenizer_pictures(report: _Report, tokenizer, tokens: PathLike | None,
                        tokenizer_problem: str) -> None:
    action_tokens = None
    if tokens is not None:
        action_tokens, = _token_arrays(tokens, "action_tokens")
    if tokenizer is None:
        report.skip("reconstructions", tokenizer_problem)
    else:
        size, channels = _image_shape(tokenizer)
        source, driving = _synthetic_pairs(size, channels, 8)
        recon = tokenizer.decode(source, tokenizer.encode(source, driving))
        report.add("reconstructions", figures.plot_reconstructions(
            source, driving, recon, report.path("reconstructions")))
        if action_tokens is None:
            # No ME token cache: show the codes of many SynthFACS talking-face pairs.
            source, driving = _synthetic_pairs(size, channels, 128)
            action_tokens = tokenizer.encode(source, driving)
    if action_tokens is None:
        for name in ("codebook_usage", "position_frequency"):
            report.skip(name, "neither a token cache nor a tokenizer")
        return
    codebook_size = (int(tokenizer.config.codebook_size) if tokenizer is not None
                     else int(action_tokens.max()) + 1)
    report.add("codebook_usage", figures.plot_codebook_usage(
        action_tokens, codebook_size, report.path("codebook_usage")))
    report.add("position_frequency", figures.plot_position_token_frequency(
        action_tokens, codebook_size, report.path("position_frequency")))


def _loso_pictures(report: _Report, loso: epath.Path | None,
                   position_label: str = "token position") -> dict | None:
    if loso is None or not (loso / workdir_lib.PREDICTIONS_FILE).exists():
        reason = "no finished LOSO run"
        report.skip("confusion_matrices", reason)
        report.skip("pooling_weights", reason)
        return None
    predictions = workdir_lib.read_predictions(loso)
    names = [str(n) for n in predictions["label_names"]]
    labels, predicted = predictions["labels"], predictions["predicted"]
    report.add("confusion_matrices", figures.plot_confusion_matrices(
        confusion_matrices(labels, predicted, predictions["datasets"], len(names)), names,
        report.path("confusion_matrices")))
    if predictions["attention"].shape[-1] > 0:
        report.add("pooling_weights", figures.plot_pooling_weights(
            predictions["attention"], labels, names, report.path("pooling_weights"),
            position_label=position_label))
    else:
        report.skip("pooling_weights", f"{loso} trained a model without attention pooling")
    return predictions


def _transfer_picture(report: _Report, tokenizer, tokens: PathLike | None,
                      predictions: dict | None, top_k: int, num_faces: int) -> None:
    if tokenizer is None or tokens is None or predictions is None or \
            predictions.get("attention", np.zeros((0, 0))).shape[-1] == 0:
        report.skip("transfer_grid", "needs a usable tokenizer, the token cache and LOSO "
                                     "attention")
        return
    action_tokens, clip_ids = _token_arrays(tokens, "action_tokens", "clip_ids")
    if "clip_ids" in predictions and not np.array_equal(predictions["clip_ids"], clip_ids):
        report.skip("transfer_grid", "the token cache's clips differ from the LOSO run's")
        return
    attention = predictions["attention"]
    chosen = _transfer_clips(predictions["labels"], attention)
    keep = most_attended_rows(attention[chosen], top_k)
    size, channels = _image_shape(tokenizer)
    faces = _neutral_faces(size, channels, num_faces)
    transferred = np.stack([
        tokenizer.transfer(action_tokens[chosen], np.repeat(face[None], len(chosen), 0),
                           keep=keep) for face in faces])
    names = predictions["label_names"]
    titles = [f"{clip_ids[c]}\n{names[predictions['labels'][c]]}" for c in chosen]
    report.add("transfer_grid", figures.plot_transfer_grid(
        faces, transferred, report.path("transfer_grid"), clip_titles=titles,
        title=transfer_title(tokenizer.config, top_k)))


def pooling_position_label(tokenizer_config: Any | None) -> str:
    """The pooling picture's x axis: token positions, or with the released token layout
    decoder-context rows (each mixes all 16 tokens). Without a tokenizer the layout is
    unknown and the axis says so."""
    if tokenizer_config is None:
        return "position (token, or context row with the released token layout)"
    if tokenizer_config.released_token_layout:
        return "decoder-context row (released token layout: each mixes all 16 tokens)"
    return "token position"


def transfer_title(tokenizer_config: Any, top_k: int) -> str:
    """What the transfer grid keeps of each clip's action, in the tokenizer's layout."""
    if tokenizer_config.released_token_layout:
        return (f"The {top_k} most-attended decoder-context rows of each clip applied to new "
                "faces (released token layout: each row holds part of all 16 tokens)")
    return f"The {top_k} most-attended tokens of each clip applied to new faces"


def _results(loso: epath.Path | None) -> dict | None:
    if loso is None or not (loso / workdir_lib.RESULTS_FILE).exists():
        return None
    return workdir_lib.read_results(loso)


def _scores_table(results: dict) -> str:
    """An HTML table of overall and per-dataset UF1/UAR from a ``results.json``."""
    rows = []
    if "uf1" in results:
        rows.append(("overall", results["uf1"], results.get("uar")))
    for dataset, scores in sorted((results.get("per_dataset") or {}).items()):
        rows.append((dataset, scores.get("uf1"), scores.get("uar")))

    def cell(value):
        return f"{value:.4f}" if isinstance(value, (int, float)) else "-"

    body = "".join(f"<tr><td>{html.escape(str(n))}</td><td>{cell(u)}</td><td>{cell(a)}</td></tr>"
                   for n, u, a in rows)
    return f"<table><tr><th>subset</th><th>UF1</th><th>UAR</th></tr>{body}</table>"


def write_index(out_dir: PathLike, pictures: dict[str, epath.Path],
                missing: dict[str, str], *, results: dict | None = None,
                comparison: str | None = None, title: str = "dface-jax report") -> epath.Path:
    """Writes ``out_dir/index.html``: the results table(s), each picture, and what is missing."""
    out_dir = storage.as_path(out_dir)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}"
             "img{max-width:100%;border:1px solid #ddd}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if results is not None:
        parts.append("<h2>D-FACE LOSO scores</h2>" + _scores_table(results))
        extra = {k: v for k, v in results.items()
                 if k in ("protocol", "text_encoder", "seed", "apex_rule", "note")}
        if isinstance(extra.get("text_encoder"), dict):
            encoder = extra["text_encoder"]
            extra["text_encoder"] = (f"{encoder.get('model')} (semantic: "
                                     f"{encoder.get('semantic')})")
        if extra:
            parts.append("<p>" + "; ".join(f"{html.escape(k)}: {html.escape(str(v))}"
                                           for k, v in extra.items()) + "</p>")
    if comparison:
        parts.append("<h2>Comparison</h2><pre>" + html.escape(comparison) + "</pre>")
    for name, caption in PICTURES.items():
        if name in pictures:
            relative = os.path.relpath(storage.absolute(pictures[name]), storage.absolute(out_dir))
            parts.append(f"<h2>{html.escape(caption)}</h2><img src='{relative}' "
                         f"alt='{html.escape(caption)}'>")
    if missing:
        parts.append("<h2>Not drawn</h2><ul>" + "".join(
            f"<li>{html.escape(PICTURES.get(n, n))}: {html.escape(r)}</li>"
            for n, r in missing.items()) + "</ul>")
    parts.append("</body></html>")
    return storage.write_text_atomic(out_dir / "index.html", "\n".join(parts))


def report_for_workdir(workdir: PathLike, out_dir: PathLike | None = None, **kwargs
                       ) -> dict[str, Any]:
    """Finds the parts of the run in ``workdir`` and builds its report (default folder
    ``workdir/report``)."""
    paths = find_run(workdir)
    out_dir = storage.as_path(out_dir) if out_dir is not None else paths.root / "report"
    return build_report(out_dir, pretrain=paths.pretrain, tokens=paths.tokens,
                        loso=paths.loso, comparison=paths.comparison,
                        title=f"dface-jax report: {paths.root.name}", **kwargs)
