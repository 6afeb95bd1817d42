"""``dface-jax eval-tokenizer --workdir W --out report.json``: score a pretrained tokenizer
on held-out people, drawn by SynthFACS or (``--renderer``) by a renderer it never saw (see
dface_jax/pretrain/evaluate.py for the protocol)."""

from __future__ import annotations

import argparse

from data_pipelines import storage

HELP = "score a tokenizer on held-out synthetic faces"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="a pretraining workdir")
    parser.add_argument("--out", required=True, help="where to write the JSON report")
    parser.add_argument("--step", type=int, default=None, help="checkpoint step (default: latest)")
    parser.add_argument("--num-identities", type=int, default=None,
                        help="held-out people (default: the run config's eval.num_identities)")
    parser.add_argument("--nuisance", choices=("clean", "talking"), default=None,
                        help="render the held-out faces clean or with the talking clips' "
                             "nuisance (default: the run config's eval.nuisance)")
    from data_pipelines.synthetic import RENDERERS

    parser.add_argument("--renderer", choices=sorted(RENDERERS), default=None,
                        help="the face renderer of the held-out people (default: the run "
                             "config's eval.renderer)")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dface_jax.pretrain.evaluate import evaluate_workdir

    eval_overrides = {}
    if args.num_identities is not None:
        eval_overrides["num_identities"] = args.num_identities
    if args.nuisance is not None:
        eval_overrides["nuisance"] = args.nuisance
    if args.renderer is not None:
        eval_overrides["renderer"] = args.renderer
    report = evaluate_workdir(args.workdir, step=args.step, overrides=eval_overrides)
    storage.write_json(args.out, report)
    for key in ("recon_l1", "codes_in_use", "perplexity", "action_probe_accuracy",
                "transfer_error_ratio"):
        print(f"{key:>22}: {report[key]:.4g}" if isinstance(report[key], float)
              else f"{key:>22}: {report[key]}")
    if "micro" in report:
        micro = report["micro"]
        print(f"at micro intensity {micro['intensity']:g}: action_probe_accuracy "
              f"{micro['action_probe_accuracy']:.4g}, transfer_error_ratio "
              f"{micro['transfer_error_ratio']:.4g}")
    print(f"wrote {args.out}")
    return 0
