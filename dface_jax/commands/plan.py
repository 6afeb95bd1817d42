"""``dface-jax plan --topology v5e-32``: compile a run's programs for a TPU slice this host
does not have and print what XLA says: memory per chip against its HBM, FLOPs and XLA's
estimated time per step, examples/s, the projected time of the config's schedule, and the
largest global batch that fits.

Programs: the tokenizer pretraining update (``--pretrain-config``, default the paper-scale
``pretrain_voxceleb.py``) over the whole slice, and the LOSO sweep (``--loso-config``,
default ``loso_composite.py``, the released settings) on one chip and with its folds split
over the slice. Needs libtpu (``pip install -e ".[tpu-aot]"``). ``--gpu`` says whether
XLA can compile for a GPU here. See dface_jax/plan/.
"""

from __future__ import annotations

import argparse
import logging

HELP = "compile a run's programs for a TPU slice and print memory, FLOPs and XLA's time estimates"
PROGRAMS = ("pretrain", "loso")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--topology", help="TPU slice: v5e-32, v4-32, v5p-32, v6e-8, or libtpu's "
                                           "v5e:4x8 form")
    parser.add_argument("--pretrain-config", default="pretrain_voxceleb.py",
                        help="pretraining config (path.py[:variant]); default the paper scale")
    parser.add_argument("--loso-config", default="loso_composite.py",
                        help="LOSO config (path.py[:variant]); default the released settings")
    parser.add_argument("--programs", default=",".join(PROGRAMS),
                        help="comma-separated subset of: " + ", ".join(PROGRAMS))
    parser.add_argument("--batch-size", type=int, default=None,
                        help="global pretraining batch (default: the config's)")
    parser.add_argument("--search-compiles", type=int, default=3,
                        help="compilations allowed to find the largest global batch that fits "
                             "(0: no search)")
    parser.add_argument("--gpu", action="store_true",
                        help="only say whether XLA can compile for a GPU on this host")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dface_jax.configs import ConfigError, load_config
    from dface_jax.plan import estimate, report, topologies

    if args.gpu:
        print(f"GPU: {topologies.gpu_compile_status()}")
        return 0
    if not args.topology:
        raise ConfigError("--topology is required (e.g. v5e-32), or --gpu")
    chosen = [p.strip() for p in args.programs.split(",") if p.strip()]
    if not chosen or set(chosen) - set(PROGRAMS):
        raise ConfigError(f"--programs={args.programs!r}; choose from {', '.join(PROGRAMS)}")
    tpu_slice = topologies.parse_slice(args.topology)
    devices = topologies.slice_devices(tpu_slice)  # LibtpuMissingError without libtpu
    log = logging.getLogger("dface_jax.plan").info
    print(report.slice_line(tpu_slice, devices[0].device_kind))
    print(f"Every time below is {report.ESTIMATE}.")
    if "pretrain" in chosen:
        config = load_config(args.pretrain_config)
        plan = estimate.plan_pretraining(config, devices, tpu_slice, global_batch=args.batch_size,
                                         search_budget=args.search_compiles, log=log)
        title = (f"tokenizer pretraining update ({args.pretrain_config}, "
                 f"{config.tokenizer.image_size} px x {config.tokenizer.channels}, "
                 f"{config.tokenizer.dtype} compute, float32 params)")
        print("\n".join(report.pretrain_lines(plan, tpu_slice, title)), flush=True)
    if "loso" in chosen:
        config = load_config(args.loso_config)
        title = f"LOSO sweep ({args.loso_config}, classifier {config.classifier.dtype} compute)"
        for chips in sorted({1, len(devices)}):
            plan = estimate.plan_loso(config, devices[:chips], log=log)
            print("\n".join(report.loso_lines(plan, tpu_slice, title)), flush=True)
    return 0
