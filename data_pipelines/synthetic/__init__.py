"""SynthFACS: a fast procedural grayscale face generator with FACS action units.

It stands in for real data in tests, benchmarks and the quickstart: ``talking_clips`` for
tokenizer pretraining (VoxCeleb stand-in) and ``me_clips`` for micro-expression datasets
shaped like SMIC-HS, CASME II, SAMM and their composite. See docs/INTERFACES.md "SynthFACS".
"""

from data_pipelines.synthetic.clips import (
    COMPOSITE_LABELS, DATASET_NUISANCE, EMOTION_AUS, ME_PRESETS, MEClip, dataset_specs,
    expression_bursts, load_me_clips_npz, me_clips, micro_profile, save_me_clips_npz, talking_clips)
from data_pipelines.synthetic.face_model import (
    AU_DESCRIPTIONS, AU_DISPLACEMENTS, AU_MOVED_GROUPS, AU_NAMES, LANDMARK_GROUPS,
    LANDMARK_NAMES, MICRO_MAX_INTENSITY, MICRO_MAX_PIXELS_AT_128, Identities,
    face_frame_landmarks, intensity_vector, neutral_landmarks, sample_identities)
from data_pipelines.synthetic.grid import identity_action_grid, save_grid_png
from data_pipelines.synthetic.render import Nuisance, face_landmarks, render_faces

__all__ = [
    "AU_DESCRIPTIONS", "AU_DISPLACEMENTS", "AU_MOVED_GROUPS", "AU_NAMES", "COMPOSITE_LABELS",
    "DATASET_NUISANCE", "EMOTION_AUS", "Identities", "LANDMARK_GROUPS", "LANDMARK_NAMES",
    "ME_PRESETS", "MEClip", "MICRO_MAX_INTENSITY", "MICRO_MAX_PIXELS_AT_128", "Nuisance",
    "dataset_specs", "expression_bursts", "face_frame_landmarks", "face_landmarks",
    "identity_action_grid",
    "intensity_vector", "load_me_clips_npz", "me_clips", "micro_profile", "neutral_landmarks",
    "render_faces", "sample_identities", "save_grid_png", "save_me_clips_npz", "talking_clips",
]
