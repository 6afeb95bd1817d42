"""SynthFACS rendering speed: frames per second at 64 and 128 px.

Prints wall-clock frames/s (what a data pipeline sees) and frames per CPU-second summed
over threads (less sensitive to other jobs on a shared machine).

    python benchmarks/synth_speed.py [--frames 2048] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from data_pipelines.synthetic import AU_NAMES, Nuisance, render_faces, sample_identities


def measure(size: int, num_frames: int, repeats: int) -> tuple[float, float]:
    """(best wall-clock frames/s, best frames per CPU-second) over ``repeats`` runs."""
    identities = sample_identities(0, num_frames)
    rng = np.random.default_rng(0)
    au = rng.uniform(0.0, 0.5, (num_frames, len(AU_NAMES))).astype(np.float32)
    render_faces(identities.take(np.arange(8)), au[:8], size=size)  # warm-up
    best_wall, best_cpu = 0.0, 0.0
    for repeat in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        render_faces(identities, au, size=size, nuisance=Nuisance(), seed=repeat)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        best_wall, best_cpu = max(best_wall, num_frames / wall), max(best_cpu, num_frames / cpu)
    return best_wall, best_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"SynthFACS render_faces, {args.frames} frames, random AUs, default nuisance, "
          f"{os.cpu_count()} CPUs")
    for size in (64, 128):
        wall, cpu = measure(size, args.frames, args.repeats)
        print(f"{size:4d} px: {wall:8.0f} frames/s   ({cpu:8.0f} frames per CPU-second)")


if __name__ == "__main__":
    main()
