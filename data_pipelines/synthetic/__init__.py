"""Synthetic faces: the renderers, the micro-expression sets they draw and the
talking-face clips the tokenizer pretrains on.

SynthFACS (``synthfacs/``) is the procedural face generator everything trains on; the
micro-expression sets (``me_sets.py``) are independent of the renderer, so held-out
renderers draw the same kind of datasets from faces the tokenizer never saw. See
docs/INTERFACES.md "SynthFACS".
"""

from data_pipelines.synthetic.facs import (
    AU_INDEX, AU_NAMES, EMOTION_AUS, MICRO_MAX_INTENSITY, NUM_AUS, intensity_vector)
from data_pipelines.synthetic.me_sets import (
    COMPOSITE_LABELS, ME_PRESETS, FaceRenderer, MEClip, build_me_clips, dataset_specs,
    load_me_clips_npz, micro_profile, save_me_clips_npz)
from data_pipelines.synthetic.meshfaces import MESHFACES
from data_pipelines.synthetic.synthfacs.face_model import (
    AU_DESCRIPTIONS, AU_DISPLACEMENTS, AU_MOVED_GROUPS, LANDMARK_GROUPS, LANDMARK_NAMES,
    MICRO_MAX_PIXELS_AT_128, Identities, face_frame_landmarks, neutral_landmarks,
    sample_identities)
from data_pipelines.synthetic.synthfacs.grid import identity_action_grid, save_grid_png
from data_pipelines.synthetic.synthfacs.render import Nuisance, face_landmarks, render_faces
from data_pipelines.synthetic.synthfacs.renderer import DATASET_NUISANCE, SYNTHFACS
from data_pipelines.synthetic.synthfacs.talking import expression_bursts, talking_clips
from data_pipelines.synthetic.warpfaces import WARPFACES

# SynthFACS is what pretraining and the quickstart draw; WarpFaces is the renderer recipes
# are chosen on; MeshFaces only ever evaluates (docs/results/heldout_renderer.md).
RENDERERS: dict[str, FaceRenderer] = {SYNTHFACS.name: SYNTHFACS, WARPFACES.name: WARPFACES,
                                      MESHFACES.name: MESHFACES}


def get_renderer(name: str) -> FaceRenderer:
    """The renderer called ``name`` (one of :data:`RENDERERS`)."""
    if name not in RENDERERS:
        raise ValueError(f"unknown face renderer {name!r}; choose from {', '.join(RENDERERS)}")
    return RENDERERS[name]


def me_clips(preset: str = "composite", size: int = 64, seed: int = 0, *,
             frames_per_clip: int = 9, label_noise: float = 0.0, idiosyncrasy: float = 0.5,
             renderer: str = "synthfacs") -> list[MEClip]:
    """Synthetic micro-expression datasets as ``MEClip``s, drawn by ``renderer``;
    deterministic per ``seed`` (see :func:`~data_pipelines.synthetic.me_sets.build_me_clips`).

    preset: ``ME_PRESETS`` ("composite": SMIC-HS-, CASME II- and SAMM-like sets, 68
    subjects, 442 clips, composite classes only).
    """
    return build_me_clips(get_renderer(renderer), preset, size, seed,
                          frames_per_clip=frames_per_clip, label_noise=label_noise,
                          idiosyncrasy=idiosyncrasy)


__all__ = [
    "AU_DESCRIPTIONS", "AU_DISPLACEMENTS", "AU_INDEX", "AU_MOVED_GROUPS", "AU_NAMES",
    "COMPOSITE_LABELS", "DATASET_NUISANCE", "EMOTION_AUS", "FaceRenderer", "Identities",
    "LANDMARK_GROUPS", "LANDMARK_NAMES", "ME_PRESETS", "MEClip", "MICRO_MAX_INTENSITY",
    "MICRO_MAX_PIXELS_AT_128", "NUM_AUS", "Nuisance", "RENDERERS", "SYNTHFACS",
    "build_me_clips", "dataset_specs", "expression_bursts", "face_frame_landmarks",
    "face_landmarks", "get_renderer", "identity_action_grid", "intensity_vector",
    "load_me_clips_npz", "me_clips", "micro_profile", "neutral_landmarks", "render_faces",
    "sample_identities", "save_grid_png", "save_me_clips_npz", "talking_clips",
]
