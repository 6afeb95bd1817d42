"""The plan as text: one block per program, every time labelled as XLA's estimate."""

from __future__ import annotations

from dface_jax.plan.compile import Figures
from dface_jax.plan.estimate import LosoPlan, PretrainPlan
from dface_jax.plan.topologies import Slice

ESTIMATE = "XLA's estimate from compilation, not a measurement"


def size(num_bytes: float) -> str:
    """Bytes as "12.3 MiB" / "1.23 GiB"."""
    if abs(num_bytes) >= 2 ** 30:
        return f"{num_bytes / 2 ** 30:.2f} GiB"
    return f"{num_bytes / 2 ** 20:.1f} MiB"


def duration(seconds: float | None) -> str:
    """Seconds as "12.3 ms" / "4.5 s" / "6.7 min" / "8.9 h" / "1.2 days"; "n/a" for None."""
    if seconds is None:
        return "n/a (XLA's cost model gave no estimate)"
    for unit, scale in (("days", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e3:.3g} ms"


def slice_line(tpu_slice: Slice, device_kind: str) -> str:
    chip = tpu_slice.chip
    return (f"{tpu_slice.name}: {tpu_slice.chips} x {device_kind} (libtpu topology "
            f"{tpu_slice.topology}), {size(chip.hbm_bytes)} HBM and "
            f"{chip.peak_bf16_flops / 1e12:.0f} TFLOP/s bf16 peak per chip (Google's figures)")


def memory_line(figures: Figures, hbm_bytes: int) -> str:
    verdict = "fits" if figures.fits(hbm_bytes) else "DOES NOT FIT"
    aliased = f" ({size(figures.alias_bytes)} of them in donated arguments)" if figures.alias_bytes else ""
    return (f"memory per chip: arguments {size(figures.argument_bytes)}, outputs "
            f"{size(figures.output_bytes)}{aliased}, temporaries {size(figures.temp_bytes)}, "
            f"code {size(figures.code_bytes)}; total {size(figures.device_bytes)} of "
            f"{size(hbm_bytes)} HBM: {verdict}")


def _seconds_note(figures: Figures) -> str:
    if not figures.unpriced_ops:
        return ""
    return (f" (XLA's raw sum {figures.xla_optimal_seconds:.4g} s counts {figures.unpriced_ops} "
            f"ConcatBitcast ops at -1 s each; added back)")


def _roofline(figures: Figures, tpu_slice: Slice) -> str:
    floor = figures.flops / tpu_slice.chip.peak_bf16_flops
    return f"{duration(floor)} (FLOPs / bf16 peak: a floor, for comparison)"


def pretrain_lines(plan: PretrainPlan, tpu_slice: Slice, title: str) -> list[str]:
    """The block of the pretraining update."""
    per_chip = plan.global_batch // plan.devices
    lines = [f"{title}: global batch {plan.global_batch} ({per_chip} per chip) over "
             f"{plan.devices} chips"]
    hbm = tpu_slice.chip.hbm_bytes
    if plan.figures is None:
        return lines + [f"  DOES NOT FIT: its arguments alone need {size(plan.arguments_bytes)} "
                        f"per chip of {size(hbm)} HBM (not compiled)"]
    figures = plan.figures
    lines += [
        f"  {memory_line(figures, hbm)}",
        f"  FLOPs per step per chip: {figures.flops:.4g}; bytes accessed {size(figures.bytes_accessed)}",
        f"  step time: {duration(figures.seconds)}{_seconds_note(figures)} [{ESTIMATE}]",
        f"  roofline floor: {_roofline(figures, tpu_slice)}",
        f"  examples/s: {_rate(plan.examples_per_second)} [{ESTIMATE}]",
        f"  {plan.num_steps} steps: {duration(plan.total_seconds)} [{ESTIMATE}]",
        f"  compiled in {figures.compile_seconds:.0f} s on this host",
    ]
    if plan.search is not None:
        lines.append(f"  {_search_line(plan)}")
    return lines


def _rate(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _search_line(plan: PretrainPlan) -> str:
    result = plan.search
    tried = ", ".join(f"{b * plan.devices} ({'fits' if ok else 'does not fit'}"
                      f"{'' if v is None else ', ' + size(v)})" for b, v, ok in result.tried)
    if result.largest_fit is None:
        return f"largest global batch that fits: none found (compiled: {tried})"
    bound = ("" if result.smallest_miss is None
             else f"; {result.smallest_miss * plan.devices} does not")
    prediction = ("" if result.predicted_limit is None else
                  f"; a straight line through these reaches the HBM at about "
                  f"{result.predicted_limit * plan.devices} (not compiled)")
    return (f"largest global batch that fits: {result.largest_fit * plan.devices} "
            f"({result.largest_fit} per chip){bound}; per-chip memory by global batch "
            f"(compiled): {tried}{prediction}")


def loso_lines(plan: LosoPlan, tpu_slice: Slice, title: str) -> list[str]:
    """The block of a LOSO sweep (memory of the whole sweep, time from its step)."""
    built = plan.programs
    padding = built.folds - plan.real_folds
    spread = (f"{plan.folds_per_device} folds per chip" + (f", {padding} padding folds" if padding else ""))
    hbm = tpu_slice.chip.hbm_bytes
    return [
        f"{title}: {plan.real_folds} folds on {plan.devices} chip(s) ({spread}); "
        f"{built.epochs} epochs x {built.steps_per_epoch} steps of {built.batch_size} clips per fold",
        f"  sweep program {memory_line(plan.sweep, hbm)}",
        f"  FLOPs per step per chip (all its folds): {plan.step.flops:.4g}",
        f"  step time: {duration(plan.step.seconds)}{_seconds_note(plan.step)}; held-out "
        f"evaluation per epoch: {duration(plan.evaluate.seconds)} [{ESTIMATE}]",
        f"  roofline floor of a step: {_roofline(plan.step, tpu_slice)}",
        f"  training clips/s over all chips: {_rate(plan.examples_per_second)} [{ESTIMATE}]",
        f"  {built.epochs} epochs: {duration(plan.total_seconds)} [{ESTIMATE}]",
        f"  compiled in {plan.sweep.compile_seconds + plan.step.compile_seconds + plan.evaluate.compile_seconds:.0f} s on this host",
    ]
