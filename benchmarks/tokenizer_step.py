"""Tokenizer train-step throughput, model FLOP utilisation, and whether Grain keeps up.

    python benchmarks/tokenizer_step.py [--config pretrain_synthetic.py[:tiny]] [--steps 20]
        [--num-workers 0] [--config.train.batch_size=64 ...]

Prints:
- step examples/s: global batch / wall time of one jit-compiled update (after warm-up);
- model FLOP utilisation: XLA's cost analysis of the compiled update (FLOPs per step) /
  step time / the peak of a large f32 matmul measured in the same run on the same devices
  (so it is the fraction of *this machine's* attainable matmul rate, not a datasheet peak);
- pipeline examples/s of the Grain pair pipeline (SynthFACS shards rendered into a temp
  dir) and its ratio to the step rate: >= 1 means the input pipeline keeps up.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

from dface_jax.configs import load_config
from dface_jax.pretrain import data as data_lib
from dface_jax.pretrain import step as step_lib
from dface_jax.runtime import mesh as mesh_lib


def matmul_peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of a ``size``-square f32 matmul on the default device (best of ``repeats``)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (size, size), jnp.float32)
    matmul = jax.jit(lambda x, y: x @ y)
    matmul(a, a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2.0 * size ** 3 / best


def compiled_flops(compiled) -> float:
    """FLOPs XLA's cost analysis assigns to a compiled computation (summed over modules)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, dict):
        analysis = [analysis]
    return float(sum(entry.get("flops", 0.0) for entry in analysis))


def step_benchmark(config, steps: int) -> dict:
    mesh = mesh_lib.make_mesh()
    task = step_lib.tokenizer_task(config.tokenizer)
    optimizer = step_lib.make_optimizer(config.train)
    size, channels = config.tokenizer.image_size, config.tokenizer.channels
    spec = step_lib.example_batch_spec(size, channels, config.train.batch_size)
    functions = step_lib.make_train_functions(task, optimizer, mesh, spec)
    state = functions.init(jax.random.PRNGKey(0))
    rng = np.random.default_rng(0)
    local = {name: rng.random(s.shape, np.float32) for name, s in spec.items()}
    batch = mesh_lib.global_batch(local, mesh)

    start = time.perf_counter()
    compiled = functions.update.lower(state, batch).compile()
    compile_seconds = time.perf_counter() - start
    flops = compiled_flops(compiled)
    state, metrics = compiled(state, batch)  # warm-up
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = compiled(state, batch)
    jax.block_until_ready(metrics)
    step_seconds = (time.perf_counter() - start) / steps
    return {"compile_seconds": compile_seconds, "flops_per_step": flops,
            "step_seconds": step_seconds,
            "examples_per_sec": config.train.batch_size / step_seconds}


def pipeline_benchmark(config, batches: int, num_workers: int) -> float:
    """Examples/s of the Grain pair pipeline over freshly rendered SynthFACS shards."""
    from data_pipelines.talking_faces.shards import pair_dataset

    with tempfile.TemporaryDirectory() as tmp:
        config.data.dir = ""
        config.data.num_clips = min(config.data.num_clips, 128)
        shard_dir = data_lib.ensure_clip_shards(config, tmp)
        iterator = iter(pair_dataset(
            shard_dir, seed=0, min_gap=config.data.min_gap, max_gap=config.data.max_gap,
            batch_size=config.train.batch_size, num_workers=num_workers))
        next(iterator)  # start-up (worker processes) is not throughput
        start = time.perf_counter()
        for _ in range(batches):
            next(iterator)
        seconds = time.perf_counter() - start
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return batches * config.train.batch_size / seconds


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="pretrain_synthetic.py")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--pipeline-batches", type=int, default=20)
    parser.add_argument("--num-workers", type=int, default=0)
    overrides = [a for a in argv if a.startswith("--config.")]
    args = parser.parse_args([a for a in argv if not a.startswith("--config.")])
    config = load_config(args.config, overrides)

    peak = matmul_peak_flops()
    step = step_benchmark(config, args.steps)
    pipeline = pipeline_benchmark(config, args.pipeline_batches, args.num_workers)
    print(f"devices: {jax.device_count()} x {jax.devices()[0].device_kind} "
          f"({jax.default_backend()}); config {args.config}, global batch "
          f"{config.train.batch_size}, {config.tokenizer.image_size} px, dtype "
          f"{config.tokenizer.dtype}")
    print(f"compile:                  {step['compile_seconds']:.1f} s")
    print(f"step:                     {step['step_seconds'] * 1e3:.1f} ms, "
          f"{step['examples_per_sec']:.1f} examples/s")
    print(f"FLOPs per step (XLA):     {step['flops_per_step'] / 1e9:.2f} GFLOP")
    print(f"matmul peak (measured):   {peak / 1e9:.1f} GFLOP/s")
    utilisation = step["flops_per_step"] / step["step_seconds"] / peak
    print(f"model FLOP utilisation:   {100 * utilisation:.1f} % of the measured matmul peak")
    print(f"pipeline:                 {pipeline:.1f} examples/s with {args.num_workers} workers")
    print(f"pipeline / step:          {pipeline / step['examples_per_sec']:.2f} "
          f"({'keeps up' if pipeline >= step['examples_per_sec'] else 'input-bound'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
