"""The whole method in one call: SynthFACS data -> dataset builders -> tokenizer -> tokens
-> LOSO comparison -> results table -> report folder.

``run_quickstart(out_dir, size="small")`` runs these steps, in order, inside ``out_dir``::

    data/raw/        synth     SynthFACS composite set written in the real layouts
                               (CASME2/, SAMM/, SMIC/ with their own sheets)
    data/tfds/       prepare   the composite TFDS builder run on that tree
    pretrain/        pretrain  the tokenizer pretrained on SynthFACS talking-face clips
    tokens.npz       extract   (onset, apex) tokens of every clip
    compare/         compare   D-FACE, ablations and the pixel baseline on the same folds,
                               over seeds (compare/dface is the D-FACE LOSO workdir)
    report/          report    the pictures and index.html

Resuming: a step is skipped when its completion marker ``steps/<name>.json`` exists and
its outputs are still there. The marker is written only after the step returns, so an
interrupted step runs again (and itself resumes where it can: pretraining restarts from
its last checkpoint). The resolved config is saved as ``quickstart_config.json``; running
again with a different config in the same folder is an error rather than a silent mix.

The scale comes from ``experiments/configs/quickstart_<size>.py`` (``small``: 64 px gray,
a short pretraining and a short LOSO schedule, sized for a 2-core CPU; ``paper``: the
paper-scale settings, which need an accelerator).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Callable, Sequence
from typing import Any

import ml_collections

from dface_jax.configs import load_config, save_config
from dface_jax.workdir import write_manifest

PathLike = str | pathlib.Path
SIZES = ("small", "paper")
STEP_DIR = "steps"
CONFIG_FILE = "quickstart_config.json"
LOCK_FILE = "quickstart.lock"


@dataclasses.dataclass(frozen=True)
class Step:
    """One resumable step: ``run()`` produces ``outputs`` (paths relative to the run folder)
    and returns a JSON-able summary, stored in the step's completion marker."""

    name: str
    description: str
    outputs: tuple[str, ...]
    run: Callable[[], dict | None]


def step_marker(out_dir: PathLike, name: str) -> pathlib.Path:
    return pathlib.Path(out_dir) / STEP_DIR / f"{name}.json"


def is_done(out_dir: PathLike, step: Step) -> bool:
    """Whether ``step`` finished before: its marker exists and every output is there."""
    out_dir = pathlib.Path(out_dir)
    return step_marker(out_dir, step.name).exists() and all(
        (out_dir / output).exists() for output in step.outputs)


def run_steps(out_dir: PathLike, steps: Sequence[Step], *,
              log: Callable[[str], None] = print) -> dict[str, dict]:
    """Runs the steps in order, skipping finished ones; returns each step's marker content
    (``{"seconds", "skipped", "summary"}``)."""
    out_dir = pathlib.Path(out_dir)
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
        marker.write_text(json.dumps(record, indent=2, default=str))
        log(f"    {step.name} took {record['seconds']:.1f} s")
        done[step.name] = dict(record, skipped=False)
    return done


def quickstart_config(size: str = "small", overrides: Sequence[str] = ()
                      ) -> ml_collections.ConfigDict:
    """The quickstart config of ``size`` (``experiments/configs/quickstart_<size>.py``)."""
    if size not in SIZES:
        raise ValueError(f"size {size!r}: expected one of {SIZES}")
    return load_config(f"quickstart_{size}.py", overrides)


def _check_same_config(out_dir: pathlib.Path, config: ml_collections.ConfigDict) -> None:
    """Saves the config, or refuses to resume a folder made with a different one."""
    path = out_dir / CONFIG_FILE
    current = json.loads(config.to_json_best_effort(sort_keys=True))
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != current:
            changed = sorted(k for k in set(previous) | set(current)
                             if previous.get(k) != current.get(k))
            raise ValueError(
                f"{path} was written with a different config (fields {changed} differ); "
                "use a new --out folder, or delete the folder to start over")
        return
    save_config(config, path)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def folder_lock(out_dir: PathLike):
    """Holds ``out_dir/quickstart.lock`` (this process's id) while a quickstart runs there,
    so two runs cannot write the same steps at once; a lock left by a dead process is
    taken over."""
    lock = pathlib.Path(out_dir) / LOCK_FILE
    for _ in range(2):
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            owner = lock.read_text().strip()
            if owner.isdigit() and _process_alive(int(owner)):
                raise RuntimeError(f"{out_dir} is in use by quickstart process {owner} "
                                   f"({lock}); wait for it or use another --out") from None
            lock.unlink(missing_ok=True)  # stale: its process is gone
    else:
        raise RuntimeError(f"could not take {lock}")
    os.write(descriptor, str(os.getpid()).encode())
    os.close(descriptor)
    try:
        yield lock
    finally:
        lock.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- the steps

def _synth(config: ml_collections.ConfigDict, raw_dir: pathlib.Path) -> dict:
    from data_pipelines.me.layouts import write_layout
    from data_pipelines.synthetic import me_clips

    clips = me_clips(preset="composite", size=config.synth.image_size, seed=config.synth.seed)
    written = write_layout(clips, "composite", raw_dir)
    return {"num_clips": written["num_clips"], "sheets": written["sheets"]}


def _prepare(config: ml_collections.ConfigDict, raw_dir: pathlib.Path,
             data_dir: pathlib.Path) -> dict:
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


def _pretrain(config: ml_collections.ConfigDict, workdir: pathlib.Path) -> dict:
    from dface_jax.pretrain.loop import run_pretraining
    from dface_jax.runtime.metrics_log import read_metrics

    state = run_pretraining(config.pretrain, workdir, progress=True)
    last = read_metrics(workdir)[-1]
    return {"steps": int(state["step"]), **{k: last[k] for k in
                                            ("loss", "recon_loss", "codes_in_use", "perplexity")
                                            if k in last}}


def _extract(config: ml_collections.ConfigDict, tokenizer_workdir: pathlib.Path,
             data_dir: pathlib.Path, tokens_path: pathlib.Path) -> dict:
    from dface_jax.tokens.cache import save_token_cache
    from dface_jax.tokens.extract import extract_dataset

    cache = extract_dataset(tokenizer_workdir, "composite", data_dir,
                            batch_size=config.extract.batch_size,
                            difference_size=config.extract.difference_size)
    save_token_cache(tokens_path, cache)
    return {"num_clips": int(len(cache["labels"])),
            "codes_in_use": int(len(set(cache["action_tokens"].ravel().tolist())))}


def _compare(config: ml_collections.ConfigDict, tokens_path: pathlib.Path,
             compare_dir: pathlib.Path) -> dict:
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
    path = pathlib.Path(compare_dir) / "comparison.md"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the compare step has not finished")
    return path.read_text()


def build_steps(out_dir: PathLike, config: ml_collections.ConfigDict) -> list[Step]:
    """The quickstart's steps for ``out_dir`` (see the module docstring)."""
    out_dir = pathlib.Path(out_dir)
    raw_dir, data_dir = out_dir / "data" / "raw", out_dir / "data" / "tfds"
    pretrain_dir, tokens = out_dir / "pretrain", out_dir / "tokens.npz"
    compare_dir, report_dir = out_dir / "compare", out_dir / "report"
    return [
        Step("synth", "write the SynthFACS composite set in the CASME II / SAMM / SMIC layouts",
             ("data/raw",), lambda: _synth(config, raw_dir)),
        Step("prepare", "build the composite set through the dataset builders",
             ("data/tfds",), lambda: _prepare(config, raw_dir, data_dir)),
        Step("pretrain", "pretrain the tokenizer on SynthFACS talking-face clips",
             ("pretrain/checkpoints", "pretrain/config.json"),
             lambda: _pretrain(config, pretrain_dir)),
        Step("extract", "encode every clip's (onset, apex) pair into 16 action tokens",
             ("tokens.npz",), lambda: _extract(config, pretrain_dir, data_dir, tokens)),
        Step("compare", "LOSO: D-FACE, ablations and the pixel baseline over seeds",
             ("compare",), lambda: _compare(config, tokens, compare_dir)),
        Step("report", "draw the pictures and write report/index.html",
             ("report/index.html",), lambda: _report(config, out_dir, report_dir)),
    ]


def _report(config: ml_collections.ConfigDict, out_dir: pathlib.Path,
            report_dir: pathlib.Path) -> dict:
    from dface_jax.report.page import report_for_workdir

    built = report_for_workdir(out_dir, report_dir, top_k=config.report.top_k,
                               num_faces=config.report.num_faces)
    return {"pictures": sorted(built["pictures"]), "missing": built["missing"]}


def run_quickstart(out_dir: PathLike, size: str = "small", *, overrides: Sequence[str] = (),
                   config: ml_collections.ConfigDict | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    """Runs (or resumes) the quickstart in ``out_dir``; returns the step records and the
    results table (markdown)."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = quickstart_config(size, overrides) if config is None else config
    start = time.perf_counter()
    with folder_lock(out_dir):
        _check_same_config(out_dir, config)
        write_manifest(out_dir, "quickstart", "quickstart", inputs={
            "raw_data": out_dir / "data" / "raw", "data_dir": out_dir / "data" / "tfds",
            "tokenizer_workdir": out_dir / "pretrain", "token_cache": out_dir / "tokens.npz",
            "comparison": out_dir / "compare"})
        steps = run_steps(out_dir, build_steps(out_dir, config), log=log)
    table = results_table(out_dir / "compare")
    log(table)
    log(f"report: {out_dir / 'report' / 'index.html'}")
    return {"steps": steps, "table": table, "seconds": time.perf_counter() - start}
