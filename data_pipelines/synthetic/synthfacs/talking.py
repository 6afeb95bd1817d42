"""SynthFACS talking-face clips: the VoxCeleb stand-in the tokenizer pretrains on."""

from __future__ import annotations

import numpy as np

from data_pipelines.synthetic.facs import AU_INDEX, AU_NAMES, NUM_AUS
from data_pipelines.synthetic.synthfacs.face_model import sample_identities
from data_pipelines.synthetic.synthfacs.render import Nuisance, render_faces


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
