"""LOSO speed: the vmapped all-folds sweep against the sequential per-fold loop.

    python benchmarks/loso_speed.py [--tokens tokens.npz] [--config loso_composite.py:synth]
                                    [--epochs 2] [--sequential-folds 3] [--full-sweep]

Without ``--tokens`` the cache is synthetic: the labels, subjects and datasets of
``me_clips(preset="composite")`` (442 clips, 68 subjects) with random tokens, so the work
is the real composite sweep's. Same work on both sides: the same model, config, epochs and
keys. The sequential loop is timed on its first ``--sequential-folds`` folds and
extrapolated to all folds as ``t(1 fold) + (F - 1) * per-fold time``, the per-fold time
being ``(t(k folds) - t(1 fold)) / (k - 1)``, so its one-time compilation is counted once,
as the vmapped program's is. ``--full-sweep`` also times one 68-fold vmapped sweep with the
config's own number of epochs. Prints the figures and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

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


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default=None)
    parser.add_argument("--config", default="loso_composite.py:synth")
    parser.add_argument("--epochs", type=int, default=2, help="epochs for the speed-up comparison")
    parser.add_argument("--sequential-folds", type=int, default=3)
    parser.add_argument("--full-sweep", action="store_true")
    args = parser.parse_args()

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

    def sequential(folds):
        return mer.train_folds_sequential(experiment.model, experiment.train_config,
                                          experiment.data, subjects, anchors, max_folds=folds)

    vmapped_seconds, run = timed(lambda: mer.train_folds(
        experiment.model, experiment.train_config, experiment.data, subjects, anchors))
    one_fold, _ = timed(lambda: sequential(1))
    k_folds, _ = timed(lambda: sequential(args.sequential_folds))
    per_fold = (k_folds - one_fold) / (args.sequential_folds - 1)
    sequential_seconds = one_fold + (num_folds - 1) * per_fold
    report = {"clips": int(len(subjects)), "folds": num_folds, "epochs": args.epochs,
              "steps_per_epoch": run.steps_per_epoch, "config": args.config,
              "vmapped_seconds": round(vmapped_seconds, 1),
              "sequential_seconds_extrapolated": round(sequential_seconds, 1),
              "sequential_seconds_per_fold": round(per_fold, 2),
              "speedup": round(sequential_seconds / vmapped_seconds, 2)}
    print(f"{num_folds} folds, {len(subjects)} clips, {args.epochs} epochs x "
          f"{run.steps_per_epoch} steps, config {args.config}")
    print(f"vmapped sweep (one program, incl. compile): {vmapped_seconds:.1f} s")
    print(f"sequential loop: {per_fold:.2f} s per fold -> {sequential_seconds:.1f} s for "
          f"{num_folds} folds (extrapolated from {args.sequential_folds})")
    print(f"speed-up: {report['speedup']:.1f}x")
    if args.full_sweep:
        config.train.epochs = full_epochs
        experiment = mer.build_experiment(config, cache)
        seconds, _ = timed(lambda: mer.train_folds(
            experiment.model, experiment.train_config, experiment.data, subjects, anchors))
        report["full_sweep_epochs"] = full_epochs
        report["full_sweep_seconds"] = round(seconds, 1)
        print(f"full {num_folds}-fold sweep, {full_epochs} epochs: {seconds:.1f} s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
