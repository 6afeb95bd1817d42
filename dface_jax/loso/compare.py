"""D-FACE against its ablations and the baselines (pixel CNN, STSTNet, OFF-ApexNet) on the
same LOSO folds, over seeds.

Each variant is the base config with a few dotted fields changed; each (variant, seed) is
one LOSO run in ``W/<variant>`` (first seed) or ``W/<variant>-seed<s>``. An ablation
*loses* when its mean honest UF1 is below D-FACE's by more than the larger of the two
spreads (sample std over seeds).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from data_pipelines import storage
from dface_jax.configs import ConfigError
from dface_jax.loso.protocol import ORACLE_LABEL, ORACLE_NOTE
from dface_jax.loso.run import run_loso
from dface_jax.report.tables import comparison_markdown
from dface_jax.tokens.cache import require_flow
from dface_jax.workdir import COMPARISON_TABLE, open_run

# name -> (title, overrides applied to the base config). D-FACE first: the others are
# compared with it.
COMPARISON_VARIANTS = {
    "dface": ("D-FACE", {}),
    "no_edclip": ("D-FACE without EDCLIP", {"train.edclip_weight": 0.0}),
    "mean_pooling": ("D-FACE with mean pooling", {"classifier.pooling": "mean"}),
    "shuffled_tokens": ("D-FACE, token order shuffled per clip",
                        {"token_order": "shuffled_per_clip"}),
    "pixel": ("pixel baseline (apex - onset CNN)", {"model": "pixel", "train.edclip_weight": 0.0}),
    "ststnet": ("STSTNet (onset-apex flow and strain)",
                {"model": "ststnet", "train.edclip_weight": 0.0}),
    "off_apexnet": ("OFF-ApexNet (onset-apex flow)",
                    {"model": "off_apexnet", "train.edclip_weight": 0.0}),
}
# Variants that read the cache's optical flow (checked before the first sweep starts).
FLOW_VARIANTS = ("ststnet", "off_apexnet")


def variant_config(base, overrides: dict, seed: int):
    """A copy of ``base`` with dotted-field ``overrides`` and ``train.seed = seed``."""
    config = base.copy_and_resolve_references()
    for dotted, value in {**overrides, "train.seed": seed}.items():
        *parents, leaf = dotted.split(".")
        node = config
        for name in parents:
            node = node[name]
        node[leaf] = value
    return config


def _mean_std(values: Sequence[float]) -> dict:
    array = np.asarray(values, np.float64)
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
            "values": [float(v) for v in array]}


def without_compare(config):
    """``config`` without its ``compare`` section: which seeds a comparison runs changes no
    single sweep, so neither the sweeps nor the comparison are keyed by it."""
    config = config.copy_and_resolve_references()
    if "compare" in config:
        del config["compare"]
    return config


def _comparison_row(title: str, overrides: dict, per_seed: list[dict], block=None) -> dict:
    """Mean/std over seeds of the honest scores (or of ``block``, e.g. "oracle_epoch")."""
    scores = [r if block is None else r[block] for r in per_seed]
    return {"title": title, "overrides": overrides, "seeds": [r["seed"] for r in per_seed],
            "uf1": _mean_std([s["uf1"] for s in scores]),
            "uar": _mean_std([s["uar"] for s in scores]),
            "per_dataset": {dataset: {metric: _mean_std([s["per_dataset"][dataset][metric]
                                                         for s in scores])
                                      for metric in ("uf1", "uar")}
                            for dataset in scores[0]["per_dataset"]}}


def run_comparison(base_config, cache: dict, workdir, seeds: Sequence[int], *,
                   text_encoder_dir: str | None = None, token_cache_path: str | None = None,
                   variants: Sequence[str] | None = None, keep_going: bool = False,
                   allow_config_change: bool = False,
                   log: Callable[[str], None] = print) -> dict:
    """D-FACE (honest and oracle epoch), the ablations and the baselines on the same
    folds, each over ``seeds``. Workdirs: ``W/<variant>`` (first seed) and
    ``W/<variant>-seed<s>``. Runs go seed by seed (every model at seed 0, then at seed 1,
    ...) and ``W/comparison.json`` / ``W/comparison.md`` are rewritten after every seed, so
    an interrupted comparison still has a table over the seeds it finished; a rerun reuses
    every run that finished with the same config (``run_loso``)."""
    names = list(COMPARISON_VARIANTS) if variants is None else list(variants)
    unknown = [n for n in names if n not in COMPARISON_VARIANTS]
    if unknown:
        raise ConfigError(f"unknown comparison variants {unknown}; known: "
                          f"{list(COMPARISON_VARIANTS)}")
    if not seeds:
        raise ConfigError("a comparison needs at least one seed")
    uses_flow = any(name in FLOW_VARIANTS for name in names)
    if uses_flow:  # fail now, not after the token models have trained
        require_flow(cache, token_cache_path or "token cache")
    base = without_compare(base_config)
    workdir = storage.as_path(workdir)
    inputs = {"token_cache": "" if token_cache_path is None
              else storage.absolute(token_cache_path),
              "tokenizer_workdir": str(cache["tokenizer_workdir"]),
              "seeds": ",".join(str(seed) for seed in seeds), "variants": ",".join(names)}
    per_variant: dict[str, list[dict]] = {name: [] for name in names}
    comparison = {}
    with open_run(workdir, "comparison", "compare", base, inputs=inputs,
                  allow_config_change=allow_config_change):
        for index, seed in enumerate(seeds):
            for name in names:
                _, overrides = COMPARISON_VARIANTS[name]
                run_dir = workdir / (name if index == 0 else f"{name}-seed{seed}")
                per_variant[name].append(run_loso(
                    variant_config(base, overrides, seed), cache, run_dir,
                    text_encoder_dir=text_encoder_dir, token_cache_path=token_cache_path,
                    keep_going=keep_going, allow_config_change=allow_config_change, log=log))
            comparison = _summarize(per_variant, list(seeds[:index + 1]),
                                    str(cache["flow_method"]) if uses_flow else None)
            storage.write_json(workdir / "comparison.json", comparison)
            storage.write_text_atomic(workdir / COMPARISON_TABLE, comparison_markdown(comparison))
    return comparison


def _summarize(per_variant: dict[str, list[dict]], seeds: list[int],
               flow_method: str | None = None) -> dict:
    """comparison.json: every variant's row over the seeds so far, verdicts and notes
    (``text_encoder``: the EDCLIP runs' encoder, None when no variant uses EDCLIP;
    ``flow_method``: how the flow baselines' input was computed, None without them)."""
    rows = {}
    for name, per_seed in per_variant.items():
        title, overrides = COMPARISON_VARIANTS[name]
        rows[name] = _comparison_row(title, overrides, per_seed)
        if name == "dface":
            rows["dface_oracle"] = _comparison_row(f"D-FACE, {ORACLE_LABEL}", {}, per_seed,
                                                   "oracle_epoch")
    first = next(iter(per_variant.values()))[0]
    text_encoder = next((r[0]["text_encoder"] for r in per_variant.values()
                         if r[0]["text_encoder"] is not None), None)
    return {"rows": rows, "seeds": seeds, "text_encoder": text_encoder,
            "flow_method": flow_method,
            "protocol": first["protocol"], "verdicts": comparison_verdicts(rows),
            "oracle": {"label": ORACLE_LABEL, "note": ORACLE_NOTE},
            "diverged": {name: [d for r in per_seed for d in r["diverged"]]
                         for name, per_seed in per_variant.items()},
            "train_seconds": {name: [r["train_seconds"] for r in per_seed]
                              for name, per_seed in per_variant.items()}}


def comparison_verdicts(rows: dict) -> dict:
    """Per ablation/baseline, its outcome against D-FACE (honest UF1): ``loses`` when its
    mean UF1 is below D-FACE's by more than the larger of the two spreads (std over
    seeds), ``beats`` when above by more than that, ``ties`` otherwise."""
    if "dface" not in rows:
        return {}
    reference = rows["dface"]["uf1"]
    verdicts = {}
    for name, row in rows.items():
        if name in ("dface", "dface_oracle"):
            continue
        gap = reference["mean"] - row["uf1"]["mean"]
        spread = max(reference["std"], row["uf1"]["std"])
        outcome = "loses" if gap > spread else "beats" if -gap > spread else "ties"
        verdicts[name] = {"uf1_gap": gap, "spread": spread, "outcome": outcome,
                          "loses": outcome == "loses"}
    return verdicts

