"""EDCLIP's text side: an "emotion + its facial actions" prompt per class, and anchor rows.

Each emotion class gets a prompt "emotion + its facial actions" (the released prompts for
the classes the release covers, EMFACS-style action descriptions for the others). Prompts
are looked up by label *name*, so the order of a dataset's labels never has to match the
order of a prompt list. A named prompt set (:data:`PROMPT_SETS`) replaces the table where
the release words a class differently for one experiment (its CAS(ME)^3 4-class
"negative" adds "pressed lips"). The ambiguous ``others`` class has no prompt: its samples are not
pulled towards any anchor but pushed away from all of them.

Label indices vs anchor rows: anchors hold only the emotion classes (no ``others``), in the
order of ``label_names`` with ``others`` skipped. :func:`anchor_rows` gives, for each class
index, its anchor row (or -1 for ``others``); the EDCLIP loss
(:func:`dface_jax.models.losses.edclip_loss`) reads it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

OTHERS_NAMES = ("others", "other")

# Keys are lower-case label names; synonyms used by the datasets' own sheets share a prompt.
_POSITIVE = "A positive expression with raised cheeks and pulled lip corners."
_SURPRISE = "A surprised expression with raised eyebrows and an open mouth."
_NEGATIVE = ("A negative expression with either lowered eyebrows, tightened eyelids, a raised "
             "upper lip, depressed lip corners, or a slight chin raise.")
_HAPPINESS = "A happy expression with raised cheeks and pulled lip corners."
_DISGUST = ("A disgusted expression with lowered eyebrows, tightened eyelids, a wrinkled nose, "
            "and a raised upper lip.")
_REPRESSION = "A repressed expression with depressed lip corners, and a slight chin raise."
_CONTEMPT = "A contemptuous expression with one lip corner raised slightly on one side."
_ANGER = "An angry expression with lowered brows, tightened eyelids, and pressed lips."
# Not in the release (it has no SAMM 7-class prompts); written from the EMFACS action units
# SynthFACS and the literature use: fear AU1+2+4+5+20, sadness AU1+4+15.
_FEAR = ("A fearful expression with raised and drawn together eyebrows, widened eyes, and lip "
         "corners stretched sideways.")
_SADNESS = ("A sad expression with the inner eyebrows raised and drawn together, and depressed "
            "lip corners.")

EMOTION_PROMPTS: dict[str, str] = {
    "negative": _NEGATIVE, "positive": _POSITIVE, "surprise": _SURPRISE,
    "happiness": _HAPPINESS, "happy": _HAPPINESS,
    "disgust": _DISGUST, "repression": _REPRESSION,
    "anger": _ANGER, "contempt": _CONTEMPT,
    "fear": _FEAR, "sadness": _SADNESS, "sad": _SADNESS,
}


# The release's CAS(ME)^3 4-class prompts (models/Text.py, ``FER_prompt_list[0]["CASME3_4"]``),
# used by train_casme3_4c.py; keys are the label names of the casme3 builder.
_NEGATIVE_CASME3 = ("A negative expression with either lowered eyebrows, tightened eyelids, a "
                    "raised upper lip, pressed lips, depressed lip corners, or a slight chin "
                    "raise.")
PROMPT_SETS: dict[str, dict[str, str]] = {
    "casme3_4": {"happy": _HAPPINESS, "surprise": _SURPRISE, "negative": _NEGATIVE_CASME3},
}


def is_others(label_name: str) -> bool:
    """True for the class without a prompt (``others``/``other``, any case)."""
    return label_name.strip().lower() in OTHERS_NAMES


def class_prompts(label_names: Sequence[str], prompt_set: str = "") -> tuple[str, ...]:
    """Prompts for the emotion classes of ``label_names``, in that order, skipping ``others``.

    ``prompt_set``: "" for :data:`EMOTION_PROMPTS`, or a :data:`PROMPT_SETS` name, whose
    table is then the only one used (a label it lacks is an error, not a fallback).
    Raises KeyError naming the unknown label (or set) and listing the known ones.
    """
    if prompt_set and prompt_set not in PROMPT_SETS:
        raise KeyError(f"no EDCLIP prompt set {prompt_set!r}; known sets are {sorted(PROMPT_SETS)} "
                       "and '' (the default table)")
    table = PROMPT_SETS[prompt_set] if prompt_set else EMOTION_PROMPTS
    prompts = []
    for name in label_names:
        key = name.strip().lower()
        if key in OTHERS_NAMES:
            continue
        if key not in table:
            raise KeyError(f"no EDCLIP prompt for label {name!r}"
                           + (f" in prompt set {prompt_set!r}" if prompt_set else "")
                           + f"; known labels are {sorted(table)} and {list(OTHERS_NAMES)} "
                           "(no prompt)")
        prompts.append(table[key])
    if not prompts:
        raise ValueError(f"label_names {list(label_names)} has no emotion class with a prompt")
    return tuple(prompts)


def anchor_rows(label_names: Sequence[str]) -> np.ndarray:
    """int32 [K]: for class index k, its row in the anchors of ``class_prompts``, -1 for ``others``."""
    rows, next_row = [], 0
    for name in label_names:
        if is_others(name):
            rows.append(-1)
        else:
            rows.append(next_row)
            next_row += 1
    return np.asarray(rows, np.int32)
