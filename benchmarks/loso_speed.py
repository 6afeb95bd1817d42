"""LOSO speed: the vmapped all-folds sweep against the sequential per-fold loop.

    python benchmarks/loso_speed.py [--tokens tokens.npz] [--config loso_composite.py:synth]
                                    [--epochs 2] [--sequential-folds 3] [--full-sweep]

Without ``--tokens`` the cache is synthetic: the labels, subjects and datasets of
``me_clips(preset="composite")`` (442 clips, 68 subjects) with random tokens, so the work
is the real composite sweep's. Same work on both sides: the same model, config, epochs and
keys. The vmapped program is compiled ahead of time, so its compile and run times are
reported apart; the sequential loop runs its first ``--sequential-folds`` folds (the first
one includes its compilation) and is extrapolated to all folds with the mean time of the
later folds. Reported: the steady-state speed-up (run time only, both sides) and the
end-to-end speed-up (compilation included, both sides). ``--full-sweep`` also times one
68-fold vmapped sweep with the config's own number of epochs. Prints a JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np


def composite_cache(seed: int = 0) -> dict:
    from data_pipelines.synthetic import me_clips
    from dface_jax.train.extract import synthetic_token_cache

    clips = me_clips(preset="composite", size=32, seed=seed)
    names = ("negative", "positive", "surprise")
    return synthetic_token_cache([names.index(c.composite_label) for c in clips],
                                 [f"{c.dataset}/{c.subject}" for c in clips],
                                 [c.dataset for c in clips], names, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default=None)
    parser.add_argument("--config", default="loso_composite.py:synth")
    parser.add_argument("--epochs", type=int, default=2, help="epochs for the speed-up comparison")
    parser.add_argument("--sequential-folds", type=int, default=3)
    parser.add_argument("--full-sweep", action="store_true")
    args = parser.parse_args()
    if args.sequential_folds < 2:
        parser.error("--sequential-folds must be >= 2 (the first fold includes compilation)")

    import jax.numpy as jnp

    from dface_jax.configs import load_config
    from dface_jax.train import mer
    from dface_jax.train.extract import load_token_cache

    cache = load_token_cache(args.tokens) if args.tokens else composite_cache()
    config = load_config(args.config)
    full_epochs = config.train.epochs
    config.train.epochs = args.epochs
    experiment = mer.build_experiment(config, cache)
    anchors = jnp.asarray(experiment.anchors)
    subjects = cache["subjects"]
    num_folds = len(set(subjects.tolist()))

    vmapped_timings, sequential_timings = {}, {}
    run = mer.train_folds(experiment.model, experiment.train_config, experiment.data, subjects,
                          anchors, timings=vmapped_timings)
    mer.train_folds_sequential(experiment.model, experiment.train_config, experiment.data,
                               subjects, anchors, max_folds=args.sequential_folds,
                               timings=sequential_timings)
    first, *later = sequential_timings["fold_seconds"]
    per_fold = float(np.mean(later))
    sequential_run = num_folds * per_fold
    sequential_total = first + (num_folds - 1) * per_fold
    vmapped_run = vmapped_timings["run_seconds"]
    vmapped_total = vmapped_run + vmapped_timings["compile_seconds"]
    report = {"clips": int(len(subjects)), "folds": num_folds, "epochs": args.epochs,
              "steps_per_epoch": run.steps_per_epoch, "config": args.config,
              "vmapped_compile_seconds": round(vmapped_timings["compile_seconds"], 1),
              "vmapped_run_seconds": round(vmapped_run, 1),
              "sequential_seconds_per_fold": round(per_fold, 2),
              "sequential_first_fold_seconds": round(first, 2),
              "speedup_steady_state": round(sequential_run / vmapped_run, 2),
              "speedup_end_to_end": round(sequential_total / vmapped_total, 2)}
    print(f"{num_folds} folds, {len(subjects)} clips, {args.epochs} epochs x "
          f"{run.steps_per_epoch} steps, config {args.config}")
    print(f"vmapped sweep: compile {vmapped_timings['compile_seconds']:.1f} s, run {vmapped_run:.1f} s")
    print(f"sequential loop: first fold {first:.1f} s (incl. compile), then {per_fold:.2f} s per "
          f"fold -> {sequential_run:.1f} s run for {num_folds} folds (extrapolated)")
    print(f"speed-up, steady state: {report['speedup_steady_state']:.1f}x; end to end: "
          f"{report['speedup_end_to_end']:.1f}x")
    if args.full_sweep:
        config.train.epochs = full_epochs
        experiment = mer.build_experiment(config, cache)
        full_timings = {}
        mer.train_folds(experiment.model, experiment.train_config, experiment.data, subjects,
                        anchors, timings=full_timings)
        seconds = full_timings["compile_seconds"] + full_timings["run_seconds"]
        report.update(full_sweep_epochs=full_epochs, full_sweep_seconds=round(seconds, 1),
                      full_sweep_compile_seconds=round(full_timings["compile_seconds"], 1))
        print(f"full {num_folds}-fold sweep, {full_epochs} epochs: {seconds:.1f} s "
              f"(compile {full_timings['compile_seconds']:.1f} s)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
