"""Synthetic micro-expression datasets, whatever renders the faces.

A dataset preset mirrors the shape of a real set (subjects, clips per emotion word, id
formats, the quirks of its coding sheet): SMIC-HS, CASME II, SAMM, their MEGC 2019
composite, and CAS(ME)^3 Part A. :func:`plan_dataset`
decides, for one dataset, which subject shows which emotion in which clip and with which
action units over time (a neutral onset rising to an apex at micro-expression intensity
and falling back); a :class:`FaceRenderer` turns that plan into frames. The plan knows
nothing about pixels, so every renderer (SynthFACS, and the held-out renderers that
only evaluate generalisation) draws the same kind of datasets from its own faces.

A renderer is any object with the four methods of :class:`FaceRenderer`. Its ``render``
must be a pure function of its arguments, and the random draws of row ``r`` (sensor
noise, frame jitter) may depend only on ``seed`` and ``r``: rendering the same people,
scenes and seed with other action intensities then gives the same nuisance, which the
tokenizer evaluation relies on (neutral and action frames of a pair differ only by the
action).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any, Protocol

import numpy as np

from data_pipelines.synthetic.facs import (
    AU_INDEX, AU_NAMES, AU_SUBSTITUTES, EMOTION_AUS, MICRO_MAX_INTENSITY, NEGATIVE_EMOTIONS,
    NUM_AUS, OTHERS_AUS)

COMPOSITE_LABELS = ("negative", "positive", "surprise")
ME_PRESETS = ("composite", "casme2", "samm", "smic", "casme3")


@dataclasses.dataclass(frozen=True)
class MEClip:
    """One micro-expression clip (fields as in docs/INTERFACES.md "SynthFACS")."""

    frames: np.ndarray          # [T, H, W, 1] float32 in [0, 1]
    onset_index: int
    # the apex as the coding sheet gives it: the frame of peak intensity, except in the
    # clips a preset annotates with the apex at the onset (DatasetSpec.apex_at_onset_clips)
    apex_index: int
    offset_index: int
    emotion: str                # the dataset's own label word
    composite_label: str | None  # one of COMPOSITE_LABELS, None for "others"
    subject: str                # the dataset's own subject id
    dataset: str                # "casme2" | "samm" | "smic" | "casme3"
    clip_id: str                # the dataset's own folder name (CAS(ME)^3: "<video>_<onset>")
    action_units: str           # e.g. "6+12"
    au_intensities: np.ndarray  # [T, A] float32


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The shape of one ME dataset: subjects, clips per emotion word and their labels.

    ``scene_style``: whose camera and light the renderers draw ("" = ``name``'s own).
    Sheet quirks (CAS(ME)^3): ``onset_zero_clips`` clips annotated at onset frame 0 (a
    frame the videos do not have) with the apex at the onset too, as the real row is;
    ``apex_at_onset_clips`` other clips annotated with the apex at the onset.
    """

    name: str
    subjects: tuple[str, ...]
    class_counts: dict[str, int]          # emotion word -> number of clips
    generator_emotion: dict[str, str]     # emotion word -> EMOTION_AUS key, "negative" or "others"
    composite_label: dict[str, str | None]
    scene_style: str = ""
    onset_zero_clips: int = 0
    apex_at_onset_clips: int = 0


SMIC_SUBJECTS = ("s1", "s2", "s3", "s4", "s5", "s6", "s8", "s9", "s11", "s12", "s13", "s14",
                 "s15", "s18", "s19", "s20")
CASME2_SUBJECTS = tuple(f"sub{i:02d}" for i in range(1, 27))
CASME2_COMPOSITE_SUBJECTS = tuple(s for s in CASME2_SUBJECTS if s not in ("sub10", "sub18"))
SAMM_SUBJECTS = tuple(f"{i:03d}" for i in range(6, 38))
SAMM_COMPOSITE_SUBJECTS = tuple(s for s in SAMM_SUBJECTS if s not in ("008", "027", "029", "031"))

_CASME2_WORDS = {"happiness": "happiness", "disgust": "disgust", "repression": "repression",
                 "surprise": "surprise", "others": "others"}
_CASME2_COMPOSITE = {"happiness": "positive", "disgust": "negative", "repression": "negative",
                     "surprise": "surprise", "others": None}
_SAMM_WORDS = {"Anger": "anger", "Contempt": "contempt", "Disgust": "disgust", "Fear": "fear",
               "Sadness": "sadness", "Happiness": "happiness", "Surprise": "surprise",
               "Other": "others"}
_SAMM_COMPOSITE = {"Anger": "negative", "Contempt": "negative", "Disgust": "negative",
                   "Fear": "negative", "Sadness": "negative", "Happiness": "positive",
                   "Surprise": "surprise", "Other": None}
_SMIC_WORDS = {"negative": "negative", "positive": "happiness", "surprise": "surprise"}
_SMIC_COMPOSITE = {"negative": "negative", "positive": "positive", "surprise": "surprise"}
# CAS(ME)^3 Part A: the 95 subjects of the released script's LOSO list (train_casme3_4c.py
# of the authors' D-FACE code) and the seven emotion words of the ME sheet.
CASME3_SUBJECTS = tuple(f"spNO.{i}" for i in (
    *range(1, 16), 17, 39, 40, 41, 42, 77, 138, 139, *range(142, 164), *range(165, 191),
    *range(192, 199), *range(200, 205), *range(206, 218)))
CASME3_VIDEOS = "abcdefghijklm"  # Part A: 13 videos per subject
_CASME3_WORDS = {"happy": "happiness", "surprise": "surprise", "disgust": "disgust",
                 "anger": "anger", "fear": "fear", "sad": "sadness", "others": "others"}
_CASME3_COMPOSITE = {"happy": "positive", "surprise": "surprise", "disgust": "negative",
                     "anger": "negative", "fear": "negative", "sad": "negative", "others": None}


def dataset_specs(preset: str) -> tuple[DatasetSpec, ...]:
    """The datasets of a preset: "composite" (three, composite classes only), or one of
    "casme2" (5 classes incl. others), "samm" (8 emotion words incl. Other), "smic",
    "casme3" (CAS(ME)^3 Part A: 7 emotion words, 95 subjects, 860 clips, sheet quirks)."""
    smic = DatasetSpec("smic", SMIC_SUBJECTS, {"negative": 70, "positive": 51, "surprise": 43},
                       _SMIC_WORDS, _SMIC_COMPOSITE)
    if preset == "composite":
        return (
            smic,
            DatasetSpec("casme2", CASME2_COMPOSITE_SUBJECTS,
                        {"disgust": 63, "repression": 25, "happiness": 32, "surprise": 25},
                        _CASME2_WORDS, _CASME2_COMPOSITE),
            DatasetSpec("samm", SAMM_COMPOSITE_SUBJECTS,
                        {"Anger": 57, "Contempt": 12, "Disgust": 9, "Fear": 8, "Sadness": 6,
                         "Happiness": 26, "Surprise": 15},
                        _SAMM_WORDS, _SAMM_COMPOSITE),
        )
    if preset == "casme2":
        return (DatasetSpec("casme2", CASME2_SUBJECTS,
                            {"happiness": 32, "disgust": 63, "repression": 27, "surprise": 25,
                             "others": 99},
                            _CASME2_WORDS, _CASME2_COMPOSITE),)
    if preset == "samm":
        return (DatasetSpec("samm", SAMM_SUBJECTS,
                            {"Anger": 57, "Contempt": 12, "Disgust": 9, "Fear": 8, "Sadness": 6,
                             "Happiness": 26, "Surprise": 15, "Other": 26},
                            _SAMM_WORDS, _SAMM_COMPOSITE),)
    if preset == "smic":
        return (smic,)
    if preset == "casme3":
        # 860 clips: the rows of the v2 Part A ME sheet (meb's casme3a table, 1077 AU
        # instances at 1.2523 per clip). The 4-class counts happy 56, surprise 185,
        # negative 464, others 155 are those the release's class weights [3.84, 1.16, 0.46,
        # 1.39] (train_casme3_4c.py) give as N / (4 n_c) rounded, for N = 860. How negative
        # splits into disgust / anger / fear / sad is not in the release: this split is a
        # guess that keeps disgust the largest. One clip at onset 0 with its apex there too
        # (the real sheet's spNO.216 video e); how many real rows have apex = onset is not
        # known here: three.
        return (DatasetSpec("casme3", CASME3_SUBJECTS,
                            {"happy": 56, "surprise": 185, "disgust": 250, "anger": 64,
                             "fear": 86, "sad": 64, "others": 155},
                            _CASME3_WORDS, _CASME3_COMPOSITE, scene_style="casme2",
                            onset_zero_clips=1, apex_at_onset_clips=3),)
    raise ValueError(f"unknown ME preset {preset!r}; choose from {', '.join(ME_PRESETS)}")


def micro_profile(num_frames: int) -> tuple[np.ndarray, int]:
    """[T] intensity profile 0 -> 1 -> 0 (half-cosine rise and fall) and the apex index."""
    if num_frames < 3:
        raise ValueError(f"frames_per_clip must be >= 3 (onset, apex, offset), got {num_frames}")
    apex = num_frames // 2
    t = np.arange(num_frames, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * t / apex)
    fall = 0.5 + 0.5 * np.cos(np.pi * (t - apex) / (num_frames - 1 - apex))
    return np.where(t <= apex, rise, fall).astype(np.float32), apex


def assign_subjects(rng: np.random.Generator, num_clips: int, num_subjects: int) -> np.ndarray:
    """[num_clips] subject indices: every subject at least once, the rest uneven (Dirichlet)."""
    if num_clips < num_subjects:
        raise ValueError(f"{num_clips} clips cannot give each of {num_subjects} subjects one")
    weights = rng.dirichlet(np.full(num_subjects, 1.5))
    rest = rng.choice(num_subjects, size=num_clips - num_subjects, p=weights)
    return rng.permutation(np.concatenate([np.arange(num_subjects), rest]))


def clip_ids(dataset: str, subjects: list[str], words: list[str],
             rng: np.random.Generator) -> list[str]:
    """The dataset's own folder names, unique per subject."""
    counters: dict[tuple[str, ...], int] = {}
    abbreviations = {"negative": "ne", "positive": "po", "surprise": "sur"}
    ids = []
    for subject, word in zip(subjects, words):
        if dataset == "smic":
            key = (subject, word)
            counters[key] = counters.get(key, 0) + 1
            ids.append(f"{subject}_{abbreviations[word]}_{counters[key]:02d}")
        else:
            counters[(subject,)] = counters.get((subject,), 0) + 1
            k = counters[(subject,)]
            if dataset == "casme2":
                suffix = "f" if rng.uniform() < 0.5 else ""
                ids.append(f"EP{int(rng.integers(1, 20)):02d}_{k:02d}{suffix}")
            else:
                ids.append(f"{subject}_{int(rng.integers(1, 8))}_{k}")
    return ids


def clip_action_units(rng: np.random.Generator, generator: str) -> tuple[str, ...]:
    """The AUs one clip of ``generator`` (an EMOTION_AUS key, "negative" or "others") shows."""
    if generator == "others":
        return (str(rng.choice(OTHERS_AUS)),)
    if generator == "negative":
        generator = str(rng.choice(NEGATIVE_EMOTIONS))
    aus = EMOTION_AUS[generator]
    if generator == "repression":  # repression shows two of its three AUs
        aus = tuple(sorted(rng.choice(aus, size=2, replace=False), key=AU_NAMES.index))
    return aus


@dataclasses.dataclass(frozen=True)
class DatasetPlan:
    """What one dataset shows, before any pixel: one entry per clip.

    Attributes:
      subject_of_clip: int [N] index into the dataset's subjects.
      people_seed: the seed a renderer draws the dataset's people from.
      au_intensities: float32 [N, T, A] every clip's actions over its frames.
      emotions: [N] the label word of each clip (after label noise).
      action_units: [N] the AUs shown, e.g. "6+12".
      subjects, clip_ids: [N] the dataset's own subject ids and folder names.
      apex_index: frame index of the apex (onset 0, offset T - 1).
      apex_at_onset: the clips whose sheet row gives the apex at the onset (a quirk).
    """

    subject_of_clip: np.ndarray
    people_seed: int
    au_intensities: np.ndarray
    emotions: list[str]
    action_units: list[str]
    subjects: list[str]
    clip_ids: list[str]
    apex_index: int
    apex_at_onset: frozenset[int] = frozenset()  # clips annotated with the apex at the onset


def plan_dataset(spec: DatasetSpec, rng: np.random.Generator, *, frames_per_clip: int,
                 label_noise: float, idiosyncrasy: float) -> DatasetPlan:
    """Draws one dataset's clips from ``rng``: emotions, subjects, AUs, intensities, ids.

    Per-subject idiosyncrasies: an intensity scale and one habitual AU substitution
    (``AU_SUBSTITUTES``). Label noise replaces a clip's word, not its face.
    """
    # label noise has its own stream, so the faces are the same with and without it
    label_rng = np.random.default_rng(rng.integers(2**31))
    words = [word for word, count in spec.class_counts.items() for _ in range(count)]
    words = [words[i] for i in rng.permutation(len(words))]
    num_subjects = len(spec.subjects)
    subject_of_clip = assign_subjects(rng, len(words), num_subjects)
    people_seed = int(rng.integers(2**31))
    intensity_scale = np.exp(rng.normal(0.0, 0.3 * idiosyncrasy, num_subjects))
    substitution = [
        (str(rng.choice(list(AU_SUBSTITUTES))) if rng.uniform() < 0.5 * idiosyncrasy else None)
        for _ in range(num_subjects)]
    profile, apex = micro_profile(frames_per_clip)

    num_clips = len(words)
    au_intensities = np.zeros((num_clips, frames_per_clip, NUM_AUS), np.float32)
    action_units, emotions = [], []
    for c, word in enumerate(words):
        subject = subject_of_clip[c]
        aus = clip_action_units(rng, spec.generator_emotion[word])
        if substitution[subject] in aus:
            replaced = AU_SUBSTITUTES[substitution[subject]]
            aus = tuple(sorted({replaced if a == substitution[subject] else a for a in aus},
                               key=AU_NAMES.index))
        apex_intensity = rng.uniform(0.14, 0.3, len(aus)) * intensity_scale[subject]
        apex_intensity = np.clip(apex_intensity, 0.05, MICRO_MAX_INTENSITY)
        for a, value in zip(aus, apex_intensity):
            au_intensities[c, :, AU_INDEX[a]] = value * profile
        action_units.append("+".join(a[2:] for a in aus))
        # label noise: the label word changes, the face does not
        if label_noise > 0 and label_rng.uniform() < label_noise:
            others = [w for w in spec.class_counts if w != word]
            word = str(label_rng.choice(others))
        emotions.append(word)

    subjects = [spec.subjects[s] for s in subject_of_clip]
    onset_zero, apex_at_onset = set(), set()
    if spec.onset_zero_clips or spec.apex_at_onset_clips:  # no draw for sets without quirks
        quirky = rng.choice(num_clips, spec.onset_zero_clips + spec.apex_at_onset_clips,
                            replace=False)
        onset_zero = {int(c) for c in quirky[:spec.onset_zero_clips]}
        apex_at_onset = {int(c) for c in quirky}
    if spec.name == "casme3":
        ids = casme3_clip_ids(subjects, rng, frames_per_clip, onset_zero)
    else:
        ids = clip_ids(spec.name, subjects, emotions, rng)
    return DatasetPlan(subject_of_clip=subject_of_clip, people_seed=people_seed,
                       au_intensities=au_intensities, emotions=emotions,
                       action_units=action_units, subjects=subjects, clip_ids=ids,
                       apex_index=apex, apex_at_onset=frozenset(apex_at_onset))


def casme3_clip_ids(subjects: list[str], rng: np.random.Generator, frames_per_clip: int,
                    onset_zero: set[int]) -> list[str]:
    """CAS(ME)^3 clip ids ``<video>_<onset>``: each clip in one of its subject's 13 videos,
    at an onset frame that leaves it clear of the other clips of that video; the clips of
    ``onset_zero`` start at frame 0 of their video (the first of it to be placed there)."""
    videos = [CASME3_VIDEOS[int(rng.integers(len(CASME3_VIDEOS)))] for _ in subjects]
    next_free: dict[tuple[str, str], int] = {}
    ids: list[str] = [""] * len(subjects)
    for c in [*sorted(onset_zero), *(c for c in range(len(subjects)) if c not in onset_zero)]:
        key = (subjects[c], videos[c])
        if key in next_free:
            onset = next_free[key]
        else:
            onset = 0 if c in onset_zero else int(rng.integers(1, 400))
        ids[c] = f"{videos[c]}_{onset}"
        next_free[key] = onset + frames_per_clip + int(rng.integers(10, 400))
    return ids


class FaceRenderer(Protocol):
    """What a face renderer provides (SynthFACS and the held-out renderers).

    ``People`` and ``Scenes`` are the renderer's own struct-of-arrays types with
    ``__len__`` and ``take(rows)``.
    """

    name: str
    seed_salt: int  # keeps two renderers' datasets of one seed independent

    def sample_people(self, seed: int, count: int) -> Any:
        """``count`` people, deterministic per ``seed``."""

    def sample_scenes(self, rng: np.random.Generator, count: int, dataset: str | None) -> Any:
        """One camera / light / framing per clip, in the style of ``dataset`` ("casme2",
        "samm", "smic"); ``None``: the style of a talking-face video (the eval's
        "talking" nuisance)."""

    def clean_scenes(self, count: int) -> Any:
        """Centred, evenly lit scenes with no noise (the eval's "clean" nuisance)."""

    def render(self, people: Any, au_intensities: np.ndarray, scenes: Any, *, size: int,
               seed: int) -> np.ndarray:
        """float32 [N, size, size, 1] in [0, 1]: row r is ``people`` row r doing
        ``au_intensities`` [N, A] row r in ``scenes`` row r."""


def build_me_clips(renderer: FaceRenderer, preset: str = "composite", size: int = 64,
                   seed: int = 0, *, frames_per_clip: int = 9, label_noise: float = 0.0,
                   idiosyncrasy: float = 0.5) -> list[MEClip]:
    """The datasets of ``preset`` rendered by ``renderer``; deterministic per ``seed``.

    label_noise: probability that a clip's emotion word is replaced by another word of its
    dataset (the face keeps the original action units). idiosyncrasy in [0, 1]: spread of
    the per-subject intensity scale and probability that a subject habitually substitutes
    one action unit for another.
    """
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    if not 0.0 <= idiosyncrasy <= 1.0:
        raise ValueError(f"idiosyncrasy must be in [0, 1], got {idiosyncrasy}")
    clips: list[MEClip] = []
    for k, spec in enumerate(dataset_specs(preset)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, renderer.seed_salt, k]))
        plan = plan_dataset(spec, rng, frames_per_clip=frames_per_clip, label_noise=label_noise,
                            idiosyncrasy=idiosyncrasy)
        people = renderer.sample_people(plan.people_seed, len(spec.subjects))
        num_clips = len(plan.emotions)
        scenes = renderer.sample_scenes(rng, num_clips, spec.scene_style or spec.name)
        frame_rows = np.repeat(np.arange(num_clips), frames_per_clip)
        frames = renderer.render(
            people.take(plan.subject_of_clip[frame_rows]),
            plan.au_intensities.reshape(-1, NUM_AUS), scenes.take(frame_rows), size=size,
            seed=seed * 7919 + k).reshape(num_clips, frames_per_clip, size, size, 1)
        clips += [
            MEClip(frames=frames[c], onset_index=0,
                   apex_index=0 if c in plan.apex_at_onset else plan.apex_index,
                   offset_index=frames_per_clip - 1, emotion=plan.emotions[c],
                   composite_label=spec.composite_label[plan.emotions[c]],
                   subject=plan.subjects[c], dataset=spec.name, clip_id=plan.clip_ids[c],
                   action_units=plan.action_units[c], au_intensities=plan.au_intensities[c])
            for c in range(num_clips)]
    return clips


_NPZ_STRING_FIELDS = ("emotion", "subject", "dataset", "clip_id", "action_units")


def save_me_clips_npz(clips: list[MEClip], path) -> None:
    """Writes clips (all with the same frame shape) to one ``.npz``; ``load_me_clips_npz``
    reads them back. ``composite_label`` None is stored as ""."""
    if not clips:
        raise ValueError("save_me_clips_npz: no clips to write")
    shapes = {c.frames.shape for c in clips}
    if len(shapes) != 1:
        raise ValueError(f"save_me_clips_npz: clips must share one frame shape, got {sorted(shapes)}")
    arrays = {
        "frames": np.stack([c.frames for c in clips]),
        "au_intensities": np.stack([c.au_intensities for c in clips]),
        "onset_index": np.array([c.onset_index for c in clips], np.int32),
        "apex_index": np.array([c.apex_index for c in clips], np.int32),
        "offset_index": np.array([c.offset_index for c in clips], np.int32),
        "composite_label": np.array([c.composite_label or "" for c in clips]),
        "au_names": np.array(AU_NAMES),
    }
    for field in _NPZ_STRING_FIELDS:
        arrays[field] = np.array([getattr(c, field) for c in clips])
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


def load_me_clips_npz(path) -> list[MEClip]:
    """Reads a file written by ``save_me_clips_npz``."""
    with np.load(path) as data:
        missing = [k for k in ("frames", "au_intensities", "onset_index", "apex_index",
                               "offset_index", "composite_label", *_NPZ_STRING_FIELDS)
                   if k not in data.files]
        if missing:
            raise KeyError(f"{path}: not a synthetic ME clip file, missing {missing}")
        arrays = {k: data[k] for k in data.files}
    return [
        MEClip(frames=arrays["frames"][i], onset_index=int(arrays["onset_index"][i]),
               apex_index=int(arrays["apex_index"][i]), offset_index=int(arrays["offset_index"][i]),
               composite_label=str(arrays["composite_label"][i]) or None,
               au_intensities=arrays["au_intensities"][i],
               **{field: str(arrays[field][i]) for field in _NPZ_STRING_FIELDS})
        for i in range(arrays["frames"].shape[0])]
