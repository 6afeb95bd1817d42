"""The FACS vocabulary every face renderer shares: action units and emotion prototypes.

These are facts about faces, not about one renderer: which action units (AUs) exist here,
which AUs an emotion shows (EMFACS-style prototypes), and how loud a micro-expression may
be. Each renderer decides for itself what an AU does to its pixels.
"""

from __future__ import annotations

import numpy as np

AU_NAMES: tuple[str, ...] = (
    "AU1", "AU2", "AU4", "AU5", "AU6", "AU7", "AU9", "AU10",
    "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26",
)
AU_INDEX: dict[str, int] = {name: i for i, name in enumerate(AU_NAMES)}
NUM_AUS = len(AU_NAMES)

# EMFACS-style prototypes. "others" clips show one ambiguous action unit instead.
EMOTION_AUS: dict[str, tuple[str, ...]] = {
    "happiness": ("AU6", "AU12"),
    "surprise": ("AU1", "AU2", "AU5", "AU26"),
    "disgust": ("AU9", "AU10"),
    "sadness": ("AU1", "AU4", "AU15"),
    "fear": ("AU1", "AU2", "AU4", "AU5", "AU20"),
    "anger": ("AU4", "AU5", "AU7", "AU23"),
    "repression": ("AU14", "AU15", "AU17"),
    "contempt": ("AU12", "AU14"),
}
NEGATIVE_EMOTIONS = ("disgust", "sadness", "fear", "anger", "repression")
OTHERS_AUS = ("AU1", "AU2", "AU4", "AU7", "AU14", "AU17", "AU25")

# A subject's habitual substitute for an action unit (per-subject idiosyncrasy).
AU_SUBSTITUTES: dict[str, str] = {
    "AU6": "AU7", "AU12": "AU14", "AU9": "AU10", "AU10": "AU9", "AU1": "AU2",
    "AU2": "AU1", "AU4": "AU7", "AU15": "AU17", "AU5": "AU1", "AU26": "AU25",
    "AU20": "AU15", "AU23": "AU17", "AU14": "AU12", "AU17": "AU15",
}

# Largest intensity of any AU in a micro-expression.
MICRO_MAX_INTENSITY = 0.3


def intensity_vector(aus: dict[str, float] | None = None, **kwargs: float) -> np.ndarray:
    """[A] float32 intensities from ``{"AU12": 0.5}`` (or keyword ``AU12=0.5``)."""
    values = dict(aus or {}, **kwargs)
    vector = np.zeros(NUM_AUS, np.float32)
    for name, value in values.items():
        if name not in AU_INDEX:
            raise KeyError(f"unknown action unit {name!r}; the renderers model {', '.join(AU_NAMES)}")
        vector[AU_INDEX[name]] = value
    return vector


def check_intensities(au_intensities: np.ndarray, n: int) -> np.ndarray:
    """float32 [n, A] intensities in [0, 1], or a ValueError saying what was expected."""
    au = np.asarray(au_intensities, np.float32)
    if au.ndim != 2 or au.shape != (n, NUM_AUS):
        raise ValueError(f"au_intensities: expected shape [{n}, {NUM_AUS}] (frames x "
                         f"{', '.join(AU_NAMES)}), got {list(au.shape)}")
    if not np.all(np.isfinite(au)) or au.min(initial=0.0) < 0.0 or au.max(initial=0.0) > 1.0:
        raise ValueError("au_intensities: expected finite values in [0, 1], got range "
                         f"[{au.min():.3g}, {au.max():.3g}]")
    return au
