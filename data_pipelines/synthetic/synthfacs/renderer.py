"""SynthFACS as a :class:`~data_pipelines.synthetic.me_sets.FaceRenderer`: its people,
its scenes (head pose and light per clip, jitter and sensor noise per frame) and its
painter, for the renderer-independent micro-expression sets and the tokenizer evaluation.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.synthetic.synthfacs.face_model import Identities, sample_identities
from data_pipelines.synthetic.synthfacs.render import Nuisance, render_faces

# Camera and light per dataset: SMIC-HS far and dim with a noisy sensor; CASME II close
# and evenly lit; SAMM closest, with a strong light gradient. Frame-to-frame head jitter
# stays around 0.1 px at 64 px (ME recordings are nearly still): more would drown the
# micro-expressions themselves (a linear probe on apex - onset drops to chance).
DATASET_NUISANCE: dict[str, Nuisance] = {
    "smic": Nuisance(translation_std=0.0015, rotation_std=0.004, scale_std=0.0015,
                     camera_scale=0.85, illumination=0.35, brightness=(0.7, 0.95), noise_std=0.025),
    "casme2": Nuisance(translation_std=0.001, rotation_std=0.003, scale_std=0.001,
                       camera_scale=1.0, illumination=0.15, brightness=(0.95, 1.1), noise_std=0.008),
    "samm": Nuisance(translation_std=0.001, rotation_std=0.003, scale_std=0.001,
                     camera_scale=1.12, illumination=0.4, brightness=(0.85, 1.05), noise_std=0.012),
}


@dataclasses.dataclass(frozen=True)
class Scenes:
    """Per-row head pose [N, 4] and light [N, 3] (None: drawn per frame from the nuisance,
    or centred and neutral without one) under one ``nuisance`` (None: clean)."""

    pose: np.ndarray | None
    lighting: np.ndarray | None
    nuisance: Nuisance | None

    def take(self, rows: np.ndarray) -> "Scenes":
        def pick(values):
            return None if values is None else np.asarray(values)[np.asarray(rows)]
        return Scenes(pick(self.pose), pick(self.lighting), self.nuisance)


class SynthFACSRenderer:
    """The SynthFACS face model and painter (``face_model.py``, ``render.py``)."""

    name = "synthfacs"
    seed_salt = 0x3E

    def sample_people(self, seed: int, count: int) -> Identities:
        return sample_identities(seed, count)

    def sample_scenes(self, rng: np.random.Generator, count: int, dataset: str | None) -> Scenes:
        if dataset is None:  # a talking-face video: pose and light drawn per frame
            return Scenes(None, None, Nuisance())
        nuisance = DATASET_NUISANCE[dataset]
        # One head pose and light per clip; the nuisance adds frame-to-frame jitter.
        pose = np.stack([rng.normal(0, 0.015, count), rng.normal(0, 0.015, count),
                         rng.normal(0, 0.03, count), rng.normal(0, 0.03, count)], 1)
        low, high = nuisance.brightness
        angle = rng.uniform(0, 2 * np.pi, count)
        strength = rng.uniform(0, nuisance.illumination, count)
        light = np.stack([rng.uniform(low, high, count), strength * np.cos(angle),
                          strength * np.sin(angle)], 1)
        return Scenes(pose, light, nuisance)

    def clean_scenes(self, count: int) -> Scenes:
        return Scenes(None, None, None)

    def render(self, people: Identities, au_intensities: np.ndarray, scenes: Scenes, *,
               size: int, seed: int) -> np.ndarray:
        return render_faces(people, au_intensities, size=size, pose=scenes.pose,
                            nuisance=scenes.nuisance, seed=seed, lighting=scenes.lighting)


SYNTHFACS = SynthFACSRenderer()
