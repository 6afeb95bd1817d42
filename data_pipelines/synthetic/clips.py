"""SynthFACS clips: talking faces (the VoxCeleb stand-in) and micro-expression datasets.

Micro-expression clips rise from a neutral onset frame to an apex and fall back to a
neutral offset frame, with the action units of the clip's emotion (EMFACS-style
``EMOTION_AUS``) at low intensity (<= ``MICRO_MAX_INTENSITY``). Each dataset preset mirrors
the shape of a real dataset (subjects, clip counts per emotion, id formats) and renders it
with its own camera and light (``DATASET_NUISANCE``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.synthetic.face_model import (
    AU_INDEX, AU_NAMES, MICRO_MAX_INTENSITY, NUM_AUS, sample_identities)
from data_pipelines.synthetic.render import Nuisance, render_faces

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

COMPOSITE_LABELS = ("negative", "positive", "surprise")


@dataclasses.dataclass(frozen=True)
class MEClip:
    """One micro-expression clip (fields as in docs/INTERFACES.md "SynthFACS")."""

    frames: np.ndarray          # [T, H, W, 1] float32 in [0, 1]
    onset_index: int
    apex_index: int
    offset_index: int
    emotion: str                # the dataset's own label word
    composite_label: str | None  # one of COMPOSITE_LABELS, None for "others"
    subject: str                # the dataset's own subject id
    dataset: str                # "casme2" | "samm" | "smic"
    clip_id: str                # the dataset's own folder name
    action_units: str           # e.g. "6+12"
    au_intensities: np.ndarray  # [T, A] float32


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """The shape of one ME dataset: subjects, clips per emotion word, labels, camera."""

    name: str
    subjects: tuple[str, ...]
    class_counts: dict[str, int]          # emotion word -> number of clips
    generator_emotion: dict[str, str]     # emotion word -> EMOTION_AUS key, "negative" or "others"
    composite_label: dict[str, str | None]
    nuisance: Nuisance


SMIC_SUBJECTS = ("s1", "s2", "s3", "s4", "s5", "s6", "s8", "s9", "s11", "s12", "s13", "s14",
                 "s15", "s18", "s19", "s20")
CASME2_SUBJECTS = tuple(f"sub{i:02d}" for i in range(1, 27))
CASME2_COMPOSITE_SUBJECTS = tuple(s for s in CASME2_SUBJECTS if s not in ("sub10", "sub18"))
SAMM_SUBJECTS = tuple(f"{i:03d}" for i in range(6, 38))
SAMM_COMPOSITE_SUBJECTS = tuple(s for s in SAMM_SUBJECTS if s not in ("008", "027", "029", "031"))

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


def dataset_specs(preset: str) -> tuple[DatasetSpec, ...]:
    """The datasets of a preset: "composite" (three, composite classes only), or one of
    "casme2" (5 classes incl. others), "samm" (8 emotion words incl. Other), "smic"."""
    smic = DatasetSpec("smic", SMIC_SUBJECTS, {"negative": 70, "positive": 51, "surprise": 43},
                       _SMIC_WORDS, _SMIC_COMPOSITE, DATASET_NUISANCE["smic"])
    if preset == "composite":
        return (
            smic,
            DatasetSpec("casme2", CASME2_COMPOSITE_SUBJECTS,
                        {"disgust": 63, "repression": 25, "happiness": 32, "surprise": 25},
                        _CASME2_WORDS, _CASME2_COMPOSITE, DATASET_NUISANCE["casme2"]),
            DatasetSpec("samm", SAMM_COMPOSITE_SUBJECTS,
                        {"Anger": 57, "Contempt": 12, "Disgust": 9, "Fear": 8, "Sadness": 6,
                         "Happiness": 26, "Surprise": 15},
                        _SAMM_WORDS, _SAMM_COMPOSITE, DATASET_NUISANCE["samm"]),
        )
    if preset == "casme2":
        return (DatasetSpec("casme2", CASME2_SUBJECTS,
                            {"happiness": 32, "disgust": 63, "repression": 27, "surprise": 25,
                             "others": 99},
                            _CASME2_WORDS, _CASME2_COMPOSITE, DATASET_NUISANCE["casme2"]),)
    if preset == "samm":
        return (DatasetSpec("samm", SAMM_SUBJECTS,
                            {"Anger": 57, "Contempt": 12, "Disgust": 9, "Fear": 8, "Sadness": 6,
                             "Happiness": 26, "Surprise": 15, "Other": 26},
                            _SAMM_WORDS, _SAMM_COMPOSITE, DATASET_NUISANCE["samm"]),)
    if preset == "smic":
        return (smic,)
    raise ValueError(f"unknown SynthFACS ME preset {preset!r}; choose from "
                     f"{', '.join(ME_PRESETS)}")


ME_PRESETS = ("composite", "casme2", "samm", "smic")


def micro_profile(num_frames: int) -> tuple[np.ndarray, int]:
    """[T] intensity profile 0 -> 1 -> 0 (half-cosine rise and fall) and the apex index."""
    if num_frames < 3:
        raise ValueError(f"frames_per_clip must be >= 3 (onset, apex, offset), got {num_frames}")
    apex = num_frames // 2
    t = np.arange(num_frames, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * t / apex)
    fall = 0.5 + 0.5 * np.cos(np.pi * (t - apex) / (num_frames - 1 - apex))
    return np.where(t <= apex, rise, fall).astype(np.float32), apex


def _assign_subjects(rng: np.random.Generator, num_clips: int, num_subjects: int) -> np.ndarray:
    """[num_clips] subject indices: every subject at least once, the rest uneven (Dirichlet)."""
    if num_clips < num_subjects:
        raise ValueError(f"{num_clips} clips cannot give each of {num_subjects} subjects one")
    weights = rng.dirichlet(np.full(num_subjects, 1.5))
    rest = rng.choice(num_subjects, size=num_clips - num_subjects, p=weights)
    return rng.permutation(np.concatenate([np.arange(num_subjects), rest]))


def _clip_ids(dataset: str, subjects: list[str], words: list[str], rng: np.random.Generator) -> list[str]:
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


def _clip_action_units(rng: np.random.Generator, generator: str) -> tuple[str, ...]:
    if generator == "others":
        return (str(rng.choice(OTHERS_AUS)),)
    if generator == "negative":
        generator = str(rng.choice(NEGATIVE_EMOTIONS))
    aus = EMOTION_AUS[generator]
    if generator == "repression":  # repression shows two of its three AUs
        aus = tuple(sorted(rng.choice(aus, size=2, replace=False), key=AU_NAMES.index))
    return aus


def _render_dataset(spec: DatasetSpec, rng: np.random.Generator, *, size: int, frames_per_clip: int,
                    label_noise: float, idiosyncrasy: float, seed: int) -> list[MEClip]:
    # label noise has its own stream, so the faces are the same with and without it
    label_rng = np.random.default_rng(rng.integers(2**31))
    words = [word for word, count in spec.class_counts.items() for _ in range(count)]
    words = [words[i] for i in rng.permutation(len(words))]
    num_subjects = len(spec.subjects)
    subject_of_clip = _assign_subjects(rng, len(words), num_subjects)
    identities = sample_identities(int(rng.integers(2**31)), num_subjects)
    # per-subject idiosyncrasies: an intensity scale and one habitual AU substitution
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
        aus = _clip_action_units(rng, spec.generator_emotion[word])
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
    clip_ids = _clip_ids(spec.name, subjects, emotions, rng)
    # one head pose and light per clip; the render nuisance adds frame-to-frame jitter
    clip_pose = np.stack([rng.normal(0, 0.015, num_clips), rng.normal(0, 0.015, num_clips),
                          rng.normal(0, 0.03, num_clips), rng.normal(0, 0.03, num_clips)], 1)
    low, high = spec.nuisance.brightness
    angle = rng.uniform(0, 2 * np.pi, num_clips)
    strength = rng.uniform(0, spec.nuisance.illumination, num_clips)
    clip_light = np.stack([rng.uniform(low, high, num_clips), strength * np.cos(angle),
                           strength * np.sin(angle)], 1)
    frames = render_faces(
        identities.take(np.repeat(subject_of_clip, frames_per_clip)),
        au_intensities.reshape(-1, NUM_AUS), size=size,
        pose=np.repeat(clip_pose, frames_per_clip, 0), nuisance=spec.nuisance,
        seed=seed, lighting=np.repeat(clip_light, frames_per_clip, 0),
    ).reshape(num_clips, frames_per_clip, size, size, 1)
    return [
        MEClip(frames=frames[c], onset_index=0, apex_index=apex, offset_index=frames_per_clip - 1,
               emotion=emotions[c], composite_label=spec.composite_label[emotions[c]],
               subject=subjects[c], dataset=spec.name, clip_id=clip_ids[c],
               action_units=action_units[c], au_intensities=au_intensities[c])
        for c in range(num_clips)]


def me_clips(preset: str = "composite", size: int = 64, seed: int = 0, *,
             frames_per_clip: int = 9, label_noise: float = 0.0,
             idiosyncrasy: float = 0.5) -> list[MEClip]:
    """Synthetic micro-expression datasets as ``MEClip``s; deterministic per ``seed``.

    preset: ``ME_PRESETS`` ("composite": SMIC-HS-, CASME II- and SAMM-like sets, 68
    subjects, 442 clips, composite classes only). label_noise: probability that a clip's
    emotion word is replaced by another word of its dataset (the face keeps the original
    action units). idiosyncrasy in [0, 1]: spread of the per-subject intensity scale and
    probability that a subject habitually substitutes one action unit for another.
    """
    if not 0.0 <= label_noise <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1], got {label_noise}")
    if not 0.0 <= idiosyncrasy <= 1.0:
        raise ValueError(f"idiosyncrasy must be in [0, 1], got {idiosyncrasy}")
    clips: list[MEClip] = []
    for k, spec in enumerate(dataset_specs(preset)):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x3E, k]))
        clips += _render_dataset(spec, rng, size=size, frames_per_clip=frames_per_clip,
                                 label_noise=label_noise, idiosyncrasy=idiosyncrasy,
                                 seed=seed * 7919 + k)
    return clips


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], num_frames: int,
                 knot_spacing: float) -> np.ndarray:
    """[*shape, T] smooth random curves in [-1, 1]: random knots every ``knot_spacing``
    frames joined by half-cosine interpolation (continuous with zero slope at the knots)."""
    num_knots = int(np.ceil((num_frames - 1) / knot_spacing)) + 2
    knots = rng.uniform(-1.0, 1.0, (*shape, num_knots))
    position = np.arange(num_frames) / knot_spacing
    index = np.floor(position).astype(np.int64)
    weight = 0.5 - 0.5 * np.cos(np.pi * (position - index))
    return knots[..., index] * (1 - weight) + knots[..., index + 1] * weight


def expression_bursts(rng: np.random.Generator, num_clips: int, num_frames: int,
                      num_actions: int, bursts_per_clip: int,
                      apex_range: tuple[float, float] = (0.5, 1.0)) -> np.ndarray:
    """[num_clips, num_actions, T] action levels in [0, 1] of ``bursts_per_clip`` expressions
    per clip: each raises 1-3 actions together from rest to an apex drawn uniformly from
    ``apex_range`` in 2-4 frames, holds 1-6 frames and releases in 2-6 frames (bursts may
    overlap; levels add and saturate at 1). Unlike ``smooth_noise`` levels, a pair of frames
    a few apart often spans a whole onset, as when a speaker smiles or frowns."""
    low, high = apex_range
    if not 0.0 < low <= high <= 1.0:
        raise ValueError(f"expression_bursts: apex_range must satisfy 0 < low <= high <= 1, "
                         f"got {apex_range}")
    levels = np.zeros((num_clips, num_actions, num_frames), np.float32)
    t = np.arange(num_frames)
    for clip in range(num_clips):
        for _ in range(bursts_per_clip):
            rise, hold, fall = rng.integers(2, 5), rng.integers(1, 7), rng.integers(2, 7)
            onset = rng.integers(-rise - hold, num_frames)  # may be under way at frame 0
            shape = np.clip(np.minimum((t - onset) / rise,
                                       (onset + rise + hold + fall - t) / fall), 0.0, 1.0)
            shape = 0.5 - 0.5 * np.cos(np.pi * shape)  # smooth start and end
            actions = rng.choice(num_actions, size=int(rng.integers(1, 4)), replace=False)
            apex = rng.uniform(low, high, (len(actions), 1))
            levels[clip, actions] += apex * shape
    return np.minimum(levels, 1.0)


SPEECH_AUS = ("AU25", "AU26")


def talking_clips(seed: int, num_clips: int, num_frames: int, size: int, *,
                  num_identities: int | None = None, nuisance: Nuisance | None = None,
                  active_aus: tuple[int, int] = (2, 5), speech_probability: float = 0.8,
                  drift: float = 1.0, action_knot_spacing: float = 12.0,
                  bursts_per_clip: int = 0, burst_apex: tuple[float, float] = (0.5, 1.0),
                  placement: float = 0.0,
                  camera_scales: tuple[float, float] | None = None) -> dict[str, np.ndarray]:
    """Talking-face clips for tokenizer pretraining; deterministic per ``seed``.

    Each clip shows one identity with ``active_aus`` (min, max) random non-mouth action
    units following smooth random trajectories (a new random level every
    ``action_knot_spacing`` frames: smaller values make actions come and go faster),
    ``bursts_per_clip`` expressions on top with apexes in ``burst_apex`` (see
    ``expression_bursts``), speech-like AU25/AU26 mouth motion (2-6 openings per second at
    25 fps) with probability ``speech_probability``, a slow head drift (scaled by ``drift``;
    0 = the head stays put) and the clip's own light;
    ``nuisance`` (default ``Nuisance()``) adds frame-to-frame jitter and sensor noise.
    ``placement`` > 0 puts each clip's head at its own fixed offset (translation, rotation,
    scale), drawn with ``placement`` times the default ``Nuisance()`` jitter stds (whatever
    ``nuisance`` says, as jitter may be off): the face is not at
    the same spot in every clip, yet a clip's frames do not move against each other.
    ``camera_scales`` (low, high) gives each clip its own camera scale, log-uniform in that
    range and multiplying ``nuisance.camera_scale`` (how large the face is in the frame),
    the way VoxCeleb's crops frame faces more or less tightly; None = every clip at
    ``nuisance.camera_scale``.

    Returns ``frames`` [N, T, H, W, 1] float32, ``au_intensities`` [N, T, A] float32 and
    ``identity`` [N] int32 (row of ``sample_identities(seed, num_identities)``, default one
    identity per clip).
    """
    if num_clips < 1 or num_frames < 1:
        raise ValueError(f"talking_clips: need num_clips >= 1 and num_frames >= 1, got "
                         f"{num_clips}, {num_frames}")
    if drift < 0:
        raise ValueError(f"talking_clips: drift must be >= 0, got {drift}")
    if action_knot_spacing <= 0:
        raise ValueError(f"talking_clips: action_knot_spacing must be > 0, got "
                         f"{action_knot_spacing}")
    if placement < 0:
        raise ValueError(f"talking_clips: placement must be >= 0, got {placement}")
    if camera_scales is not None and not 0.0 < camera_scales[0] <= camera_scales[1]:
        raise ValueError(f"talking_clips: camera_scales must be (low, high) with "
                         f"0 < low <= high, got {camera_scales}")
    if bursts_per_clip < 0:
        raise ValueError(f"talking_clips: bursts_per_clip must be >= 0, got {bursts_per_clip}")
    if not 0.0 <= speech_probability <= 1.0:
        raise ValueError(f"talking_clips: speech_probability must be in [0, 1], got "
                         f"{speech_probability}")
    nuisance = Nuisance() if nuisance is None else nuisance
    num_identities = num_clips if num_identities is None else num_identities
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7A1C]))
    identities = sample_identities(seed, num_identities)
    identity = (np.arange(num_clips) % num_identities if num_identities >= num_clips
                else rng.integers(0, num_identities, num_clips)).astype(np.int32)

    face_aus = [i for i, name in enumerate(AU_NAMES) if name not in SPEECH_AUS]
    au = np.zeros((num_clips, num_frames, NUM_AUS), np.float32)
    # non-mouth actions: smooth curves, negative parts clipped to rest (actions come and go)
    trajectories = smooth_noise(rng, (num_clips, len(face_aus)), num_frames,
                                action_knot_spacing)
    peak = rng.uniform(0.3, 1.0, (num_clips, len(face_aus), 1))
    low, high = active_aus
    for c in range(num_clips):
        chosen = rng.choice(len(face_aus), size=int(rng.integers(low, high + 1)), replace=False)
        for k in chosen:
            curve = 1.3 * trajectories[c, k]
            curve += max(0.0, 0.5 - curve.max())  # a chosen action shows at least once
            au[c, :, face_aus[k]] = np.clip(curve, 0, 1) * peak[c, k, 0]
    if bursts_per_clip:  # drawn after the smooth curves: clips without bursts stay as they were
        bursts = expression_bursts(rng, num_clips, num_frames, len(face_aus), bursts_per_clip,
                                    apex_range=tuple(burst_apex))
        au[:, :, face_aus] = np.minimum(au[:, :, face_aus] + bursts.transpose(0, 2, 1), 1.0)
    # speech: a jaw oscillation at 0.08-0.24 cycles per frame under a smooth envelope
    t = np.arange(num_frames)
    frequency = rng.uniform(0.08, 0.24, (num_clips, 1))
    phase = rng.uniform(0, 2 * np.pi, (num_clips, 1))
    envelope = np.clip(0.6 + 0.6 * smooth_noise(rng, (num_clips,), num_frames, 10.0), 0, 1)
    speaking = (rng.uniform(size=(num_clips, 1)) < speech_probability)
    jaw = speaking * envelope * rng.uniform(0.4, 0.9, (num_clips, 1)) * (
        0.5 + 0.5 * np.sin(2 * np.pi * frequency * t + phase))
    au[:, :, AU_INDEX["AU26"]] = jaw
    au[:, :, AU_INDEX["AU25"]] = np.clip(1.4 * jaw + 0.1 * speaking, 0, 1)
    # slow pose drift (translation, rotation, log scale) and one light per clip
    drift_scale = drift * np.array([0.025, 0.025, 0.06, 0.04])[None, :, None]
    pose = (smooth_noise(rng, (num_clips, 4), num_frames, 16.0) * drift_scale).transpose(0, 2, 1)
    angle = rng.uniform(0, 2 * np.pi, num_clips)
    strength = rng.uniform(0, nuisance.illumination, num_clips)
    light = np.stack([rng.uniform(*nuisance.brightness, num_clips), strength * np.cos(angle),
                      strength * np.sin(angle)], 1)
    if placement:  # drawn last: clips without a placement stay as they were
        jitter = Nuisance()
        placement_std = placement * np.array([jitter.translation_std, jitter.translation_std,
                                              jitter.rotation_std, jitter.scale_std])
        pose = pose + (rng.standard_normal((num_clips, 4)) * placement_std)[:, None, :]
    if camera_scales is not None:  # drawn last too; pose[..., 3] is the log scale
        log_low, log_high = np.log(camera_scales[0]), np.log(camera_scales[1])
        pose[:, :, 3] += rng.uniform(log_low, log_high, num_clips)[:, None]
    frames = render_faces(
        identities.take(np.repeat(identity, num_frames)), au.reshape(-1, NUM_AUS), size=size,
        pose=pose.reshape(-1, 4), nuisance=nuisance, seed=seed,
        lighting=np.repeat(light, num_frames, 0))
    return {"frames": frames.reshape(num_clips, num_frames, size, size, 1),
            "au_intensities": au, "identity": identity}


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
    np.savez_compressed(path, **arrays)


def load_me_clips_npz(path) -> list[MEClip]:
    """Reads a file written by ``save_me_clips_npz``."""
    with np.load(path) as data:
        missing = [k for k in ("frames", "au_intensities", "onset_index", "apex_index",
                               "offset_index", "composite_label", *_NPZ_STRING_FIELDS)
                   if k not in data.files]
        if missing:
            raise KeyError(f"{path}: not a SynthFACS ME clip file, missing {missing}")
        arrays = {k: data[k] for k in data.files}
    return [
        MEClip(frames=arrays["frames"][i], onset_index=int(arrays["onset_index"][i]),
               apex_index=int(arrays["apex_index"][i]), offset_index=int(arrays["offset_index"][i]),
               composite_label=str(arrays["composite_label"][i]) or None,
               au_intensities=arrays["au_intensities"][i],
               **{field: str(arrays[field][i]) for field in _NPZ_STRING_FIELDS})
        for i in range(arrays["frames"].shape[0])]
