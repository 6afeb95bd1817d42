"""LOSO speed: the vmapped all-folds sweep against the sequential per-fold loop.

    python benchmarks/loso_speed.py [--tokens tokens.npz] [--config loso_composite.py:synth]
                                    [--epochs 2] [--sequential-folds 3] [--full-sweep]
                                    [--model dface|pixel] [--config.classifier.dropout=0 ...]

Without ``--tokens`` the cache is synthetic: the labels, subjects and datasets of
``me_clips(preset="composite")`` (442 clips, 68 subjects) with random tokens, so the work
is the real composite sweep's. Same work on both sides: the same model, config, epochs and
keys. The vmapped program is compiled ahead of time, so its compile and run times are
reported apart; the sequential loop runs its first ``--sequential-folds`` folds (the first
one includes its compilation) and is extrapolated to all folds with the mean time of the
later folds. Reported: the steady-state speed-up (run time only, both sides) and the
end-to-end speed-up (compilation included, both sides). ``--full-sweep`` also times one
68-fold vmapped sweep with the config's own number of epochs. ``--config.field=value``
overrides the LOSO config as on the CLI (``--config.classifier.dropout=0`` shows what
dropout's random draws cost both sides). Prints a JSON line last.

Also reported, to say whether a side is compute-bound: the FLOPs of one training step of
one fold (XLA's cost analysis of the compiled single-fold step: forward, backward, AdamW),
the GFLOP/s each side reaches, and a probe of what this machine's XLA:CPU reaches right
now on a batched GEMM of the sweep's shape class ([68, 256, 32] x [68, 32, 96]); under
load (other processes on the 2 cores) all three figures fall together, the ratios hold.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import time

import numpy as np


def composite_cache(seed: int = 0) -> dict:
    from data_pipelines.synthetic import me_clips
    from dface_jax.tokens.cache import synthetic_token_cache

    clips = me_clips(preset="composite", size=32, seed=seed)
    names = ("negative", "positive", "surprise")
    return synthetic_token_cache([names.index(c.composite_label) for c in clips],
                                 [f"{c.dataset}/{c.subject}" for c in clips],
                                 [c.dataset for c in clips], names, seed=seed)


def step_flops(experiment, anchors) -> float:
    """FLOPs of one training step of one fold (XLA cost analysis of the compiled step)."""
    import jax
    import jax.numpy as jnp

    from dface_jax.loso.folds import fold_keys, make_folds, steps_per_epoch
    from dface_jax.loso.step import fold_functions

    folds = make_folds(np.arange(experiment.data.labels.shape[0]) % 2)[1]
    num_steps = steps_per_epoch(folds, experiment.train_config.batch_size)
    pieces = fold_functions(experiment.model, experiment.train_config,
                            experiment.data.inputs[:1], num_steps)
    key = fold_keys(0, 1)[0]
    batch = jnp.arange(experiment.train_config.batch_size, dtype=jnp.int32)
    weights = jnp.ones((experiment.model.num_classes,), jnp.float32)
    state = pieces.init(key, experiment.model.pretrained)
    compiled = jax.jit(pieces.train_step).lower(state, batch, key, weights, experiment.data,
                                                anchors).compile()
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
    return float(analysis["flops"])


def gemm_gflops(repeats: int = 30) -> float:
    """GFLOP/s of a jitted batched GEMM [68, 256, 32] x [68, 32, 96] on this machine now."""
    import jax
    import jax.numpy as jnp

    left, right = jnp.ones((68, 256, 32)), jnp.ones((68, 32, 96))
    product = jax.jit(lambda a, b: jnp.einsum("fnd,fde->fne", a, b))
    jax.block_until_ready(product(left, right))
    start = time.perf_counter()
    for _ in range(repeats):
        result = product(left, right)
    jax.block_until_ready(result)
    return 2 * 68 * 256 * 32 * 96 * repeats / (time.perf_counter() - start) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", default=None)
    parser.add_argument("--config", default="loso_composite.py:synth")
    parser.add_argument("--epochs", type=int, default=2, help="epochs for the speed-up comparison")
    parser.add_argument("--sequential-folds", type=int, default=3)
    parser.add_argument("--full-sweep", action="store_true")
    parser.add_argument("--model", choices=("dface", "pixel"), default="dface",
                        help="pixel: the apex-minus-onset CNN baseline (EDCLIP off)")
    args, overrides = parser.parse_known_args()
    if args.sequential_folds < 2:
        parser.error("--sequential-folds must be >= 2 (the first fold includes compilation)")

    import jax.numpy as jnp

    from dface_jax.configs import load_config
    from dface_jax.loso.experiment import build_experiment
    from dface_jax.loso.sweep import train_folds, train_folds_sequential
    from dface_jax.tokens.cache import load_token_cache

    cache = load_token_cache(args.tokens) if args.tokens else composite_cache()
    config = load_config(args.config, overrides)
    if args.model == "pixel":
        config.model, config.train.edclip_weight = "pixel", 0.0
    full_epochs = config.train.epochs
    config.train.epochs = args.epochs
    experiment = build_experiment(config, cache)
    anchors = None if experiment.anchors is None else jnp.asarray(experiment.anchors)
    subjects = cache["subjects"]
    num_folds = len(set(subjects.tolist()))

    vmapped_timings, sequential_timings = {}, {}
    run = train_folds(experiment.model, experiment.train_config, experiment.data, subjects,
                          anchors, timings=vmapped_timings)
    train_folds_sequential(experiment.model, experiment.train_config, experiment.data,
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
              "overrides": overrides,
              "vmapped_compile_seconds": round(vmapped_timings["compile_seconds"], 1),
              "vmapped_run_seconds": round(vmapped_run, 1),
              "sequential_seconds_per_fold": round(per_fold, 2),
              "sequential_first_fold_seconds": round(first, 2),
              "speedup_steady_state": round(sequential_run / vmapped_run, 2),
              "speedup_end_to_end": round(sequential_total / vmapped_total, 2)}
    flops = step_flops(experiment, anchors)
    fold_steps = args.epochs * run.steps_per_epoch
    report.update(model=args.model, mflops_per_fold_step=round(flops / 1e6, 1),
                  vmapped_gflops_per_second=round(flops * fold_steps * num_folds / vmapped_run / 1e9, 1),
                  sequential_gflops_per_second=round(flops * fold_steps / per_fold / 1e9, 1),
                  gemm_probe_gflops_per_second=round(gemm_gflops(), 1))
    print(f"{num_folds} folds, {len(subjects)} clips, {args.epochs} epochs x "
          f"{run.steps_per_epoch} steps, config {' '.join([args.config, *overrides])}")
    print(f"vmapped sweep: compile {vmapped_timings['compile_seconds']:.1f} s, run {vmapped_run:.1f} s")
    print(f"sequential loop: first fold {first:.1f} s (incl. compile), then {per_fold:.2f} s per "
          f"fold -> {sequential_run:.1f} s run for {num_folds} folds (extrapolated)")
    print(f"speed-up, steady state: {report['speedup_steady_state']:.1f}x; end to end: "
          f"{report['speedup_end_to_end']:.1f}x")
    print(f"one fold-step: {report['mflops_per_fold_step']} MFLOP; achieved "
          f"{report['vmapped_gflops_per_second']} GFLOP/s vmapped, "
          f"{report['sequential_gflops_per_second']} GFLOP/s sequential; batched-GEMM probe "
          f"{report['gemm_probe_gflops_per_second']} GFLOP/s")
    if args.full_sweep:
        config.train.epochs = full_epochs
        experiment = build_experiment(config, cache)
        anchors = None if experiment.anchors is None else jnp.asarray(experiment.anchors)
        full_timings = {}
        train_folds(experiment.model, experiment.train_config, experiment.data, subjects,
                        anchors, timings=full_timings)
        seconds = full_timings["compile_seconds"] + full_timings["run_seconds"]
        report.update(full_sweep_epochs=full_epochs, full_sweep_seconds=round(seconds, 1),
                      full_sweep_compile_seconds=round(full_timings["compile_seconds"], 1))
        print(f"full {num_folds}-fold sweep, {full_epochs} epochs: {seconds:.1f} s "
              f"(compile {full_timings['compile_seconds']:.1f} s)")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
