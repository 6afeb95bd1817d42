"""The tables of a run: one LOSO run's scores and a comparison over seeds (markdown)."""

from __future__ import annotations


def results_markdown(results: dict) -> str:
    """A markdown table of the honest and oracle-epoch scores, overall and per dataset."""
    lines = [f"# LOSO results ({results['model']}, seed {results['seed']})", "",
             f"Protocol: {results['protocol']}.", "",
             "| scores | subset | UF1 | UAR | clips |", "|---|---|---|---|---|"]
    oracle = results["oracle_epoch"]
    for title, block in (("honest (final epoch)", results), (oracle["label"], oracle)):
        lines.append(f"| {title} | all | {block['uf1']:.4f} | {block['uar']:.4f} | {results['count']} |")
        for name, scores in block["per_dataset"].items():
            lines.append(f"| {title} | {name} | {scores['uf1']:.4f} | {scores['uar']:.4f} "
                         f"| {scores['count']} |")
    recalls = ", ".join(f"{name} {value:.3f}" if value is not None else f"{name} n/a"
                        for name, value in results["per_class_recall"].items())
    lines += ["", f"Per-class recall (honest): {recalls}.", "", f"Oracle epoch: {oracle['note']}"]
    text = results.get("text_encoder")
    if text is not None:
        lines += ["", f"Text encoder: {text['model']} (semantic: {text['semantic']})."]
        if text["warning"]:
            lines.append(f"Warning: {text['warning']}.")
    else:
        lines += ["", f"Text encoder: none (the {results['model']} model reads no text)."]
    return "\n".join(lines) + "\n"


def _outcome_cell(verdict: dict) -> str:
    gap, spread = verdict["uf1_gap"], verdict["spread"]
    if verdict["outcome"] == "loses":
        return f"loses by {gap:.4f} UF1"
    if verdict["outcome"] == "beats":
        return f"**beats D-FACE** by {-gap:.4f} UF1"
    return f"ties (gap {gap:+.4f} within spread {spread:.4f})"


def comparison_markdown(comparison: dict) -> str:
    """The comparison table (mean ± std over seeds) with the notes."""
    rows, verdicts = comparison["rows"], comparison["verdicts"]
    datasets = sorted(next(iter(rows.values()))["per_dataset"])
    header = "| model | UF1 | UAR | " + " | ".join(f"{d} UF1 | {d} UAR" for d in datasets) + " | vs D-FACE |"
    lines = [f"# D-FACE, ablations and baselines (LOSO, seeds {comparison['seeds']})", "",
             f"Protocol: {comparison['protocol']}. Mean ± std (sample std) over seeds.", "",
             header, "|" + "---|" * (4 + 2 * len(datasets))]

    def cell(stats):
        return f"{stats['mean']:.4f} ± {stats['std']:.4f}"

    for name, row in rows.items():
        if name == "dface":
            mark = "reference"
        elif name == "dface_oracle":
            mark = "not comparable (selects epochs on test data)"
        elif name not in verdicts:
            mark = "n/a (D-FACE not in this comparison)"
        else:
            verdict = verdicts[name]
            mark = _outcome_cell(verdict)
        per_dataset = " | ".join(f"{cell(row['per_dataset'][d]['uf1'])} | {cell(row['per_dataset'][d]['uar'])}"
                                 for d in datasets)
        lines.append(f"| {row['title']} | {cell(row['uf1'])} | {cell(row['uar'])} | {per_dataset} | {mark} |")
    lines += ["", "Notes:",
              "- A row *loses* (or *beats D-FACE*) when its mean honest UF1 is below (above) "
              "D-FACE's by more than the larger of the two spreads; otherwise it *ties*.",
              "- Token order shuffled: each clip's 16 tokens get their own fixed random permutation "
              "(a single permutation for all clips would only relabel the learned positions).",
              f"- {comparison['oracle']['label']}: {comparison['oracle']['note']}"]
    text = comparison.get("text_encoder")
    if text is None:
        lines.append("- EDCLIP text encoder: none (no D-FACE variant in this comparison).")
    elif not text["semantic"]:
        lines.append(f"- EDCLIP text encoder: {text['model']}; anchors NOT semantic (no local text "
                     "model was given), so EDCLIP only adds a random-target auxiliary "
                     "loss; removing it is not expected to lose, and the table may show that.")
    else:
        lines.append(f"- EDCLIP text encoder: {text['model']}; anchors semantic.")
    if comparison.get("flow_method"):
        lines.append(f"- STSTNet and OFF-ApexNet read the cache's onset-apex flow: "
                     f"{comparison['flow_method']}. Their layers are as published; what "
                     "differs (flow method, input scale, this shared training loop) is listed in "
                     "dface_jax/models/flow_baselines.py.")
    return "\n".join(lines) + "\n"

