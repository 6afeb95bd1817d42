"""Compile a run's programs for a slice and turn XLA's figures into a plan: memory per
device against the chip's HBM, FLOPs and XLA's estimated time per step, examples per
second and the projected time of the configured schedule.

Every time here is XLA's estimate from compilation (its cost model's ``optimal_seconds``),
not a measurement.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

from dface_jax.plan import programs, search
from dface_jax.plan.compile import Figures, compile_program, tree_bytes_per_device
from dface_jax.plan.topologies import Slice


@dataclasses.dataclass(frozen=True)
class PretrainPlan:
    """The pretraining update at ``global_batch`` on ``devices`` chips. ``figures`` is None
    when the batch was refused before compiling because its arguments alone
    (``arguments_bytes`` per device) exceed the chip's memory."""

    global_batch: int
    devices: int
    num_steps: int
    figures: Figures | None
    search: search.SearchResult | None
    arguments_bytes: int

    @property
    def examples_per_second(self) -> float | None:
        seconds = None if self.figures is None else self.figures.seconds
        return None if seconds is None else self.global_batch / seconds

    @property
    def total_seconds(self) -> float | None:
        seconds = None if self.figures is None else self.figures.seconds
        return None if seconds is None else self.num_steps * seconds


def plan_pretraining(config: Any, devices: Sequence[Any], tpu_slice: Slice, *,
                     global_batch: int | None = None, search_budget: int = 0,
                     log: Callable[[str], None] = lambda _: None) -> PretrainPlan:
    """Compiles the update of ``config`` at ``global_batch`` (default: the config's) and,
    with ``search_budget`` > 0 compilations, searches the largest global batch that fits."""
    global_batch = global_batch or config.train.batch_size
    count = len(devices)

    def program(per_device: int) -> programs.Program:
        return programs.pretrain_update(config, devices, per_device * count)

    def measure(per_device: int) -> Figures:
        log(f"compiling the pretraining update at global batch {per_device * count}")
        return compile_program(program(per_device).jitted, program(per_device).arguments)

    if global_batch % count:
        raise ValueError(f"global batch {global_batch} does not divide over {count} devices")
    start = global_batch // count
    floor = lambda b: tree_bytes_per_device(program(b).arguments)  # noqa: E731
    arguments = floor(start)
    if arguments > tpu_slice.chip.hbm_bytes:
        # Not compiled: XLA would spend long minutes trying to rematerialise first.
        return PretrainPlan(global_batch, count, config.train.num_steps, None, None, arguments)
    figures = measure(start)
    result = None
    if search_budget > 0:
        result = search.largest_fitting_batch(
            lambda b: measure(b).device_bytes, tpu_slice.chip.hbm_bytes, start,
            max_compiles=search_budget, known={start: figures.device_bytes}, floor_bytes=floor)
    return PretrainPlan(global_batch, count, config.train.num_steps, figures, result, arguments)


@dataclasses.dataclass(frozen=True)
class LosoPlan:
    """A LOSO sweep's programs on ``devices`` chips: the sweep's memory, a step's and an
    evaluation's figures, and the sizes that turn them into the sweep's time."""

    devices: int
    real_folds: int
    programs: programs.LosoPrograms
    sweep: Figures
    step: Figures
    evaluate: Figures

    @property
    def folds_per_device(self) -> int:
        return self.programs.folds // self.devices

    @property
    def step_seconds(self) -> float | None:
        return self.step.seconds

    @property
    def examples_per_second(self) -> float | None:
        """Training clips per second over all devices, real folds only."""
        seconds = self.step.seconds
        return None if seconds is None else self.real_folds * self.programs.batch_size / seconds

    @property
    def total_seconds(self) -> float | None:
        """epochs x (steps x step + one evaluation): the sweep's loops, priced per body."""
        if self.step.seconds is None or self.evaluate.seconds is None:
            return None
        return self.programs.epochs * (self.programs.steps_per_epoch * self.step.seconds
                                       + self.evaluate.seconds)


def plan_loso(config: Any, devices: Sequence[Any], shapes: programs.LosoShapes = programs.COMPOSITE,
              log: Callable[[str], None] = lambda _: None) -> LosoPlan:
    """Compiles the sweep of ``config`` over ``devices`` and its step and evaluation."""
    built = programs.loso_programs(config, devices, shapes)
    log(f"compiling the LOSO sweep ({built.folds} folds over {len(devices)} device(s))")
    sweep = compile_program(built.sweep.jitted, built.sweep.arguments)
    step = compile_program(built.step.jitted, built.step.arguments)
    evaluate = compile_program(built.evaluate.jitted, built.evaluate.arguments)
    return LosoPlan(len(devices), shapes.num_subjects, built, sweep, step, evaluate)
