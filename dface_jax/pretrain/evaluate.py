"""Scores a pretrained tokenizer on held-out synthetic people (``dface-jax eval-tokenizer``).

Protocol. ``eval.num_identities`` people are drawn by ``eval.renderer`` with
``eval.identity_seed`` (a seed the training clips never use, so they are new people; with a
renderer other than SynthFACS, faces the tokenizer never saw). Each person is rendered neutral (the
source) and with every action of :data:`EVAL_ACTIONS` at ``eval.intensity`` (the driving
frames). ``eval.nuisance`` is ``"clean"`` (centred pose, neutral light, no noise) or
``"talking"`` (the talking clips' nuisance model: pose jitter, light, sensor noise; each
neutral/action pair shares one draw, so only the action differs within a pair). Then

- ``recon_l1``: mean |decode(source, encode(source, driving)) - driving| (pixels in [0, 1]);
  ``unchanged_l1`` is the same error for the source itself, for scale.
- ``changed_recon_l1`` / ``changed_unchanged_l1``: the same two errors over only the
  pixels the action moved (|driving - source| > :data:`CHANGED_PIXEL_THRESHOLD`): whether
  the tokens carry the action, undiluted by the ~96 % of the face that stays put.
- ``still_pair_l1``: mean |decode(source, encode(source, source)) - source|, what the
  tokenizer does to a face that did not move (0 = it leaves it alone).
- ``codes_in_use`` / ``perplexity``: over every token of every (person, action) pair.
- ``action_probe_accuracy``: a linear softmax probe from the tokens' one-hot encoding
  ``[16 * K]`` to the action class, fit on the first ``eval.probe_train_identities`` people
  and scored on the others (chance = 1 / number of actions).
- ``transfer_error_ratio``: for person A's tokens of action c decoded on person B's neutral
  face (B != A), the mean squared error against the true render of B doing c, divided by
  the mean squared error of B's unchanged neutral face against it. 0 is a perfect
  transfer, 1 is no better than doing nothing; lower is better. The error is the squared
  error the tokenizer is trained on; ``transfer_error_ratio_l1`` gives the same ratio with
  absolute errors, which weighs the decoder's small everywhere-errors (blur) much more
  against the action's few changed pixels (an action moves ~1 % of the pixels).

``eval.micro_intensity`` > 0 repeats the probe and the transfer test with every action at
that (low) intensity and reports them under ``micro``: micro-expressions reach only
0.14-0.3 of a full action in SynthFACS's sets (``me_clips``), and a tokenizer that
transfers full actions can still miss those, which is what D-FACE reads downstream.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax

from data_pipelines.synthetic import EMOTION_AUS, NUM_AUS, get_renderer, intensity_vector
from dface_jax.configs import dataclass_from_dict
from dface_jax.runtime.batching import apply_in_batches

# Action classes of the probe and the transfer test: the EMFACS prototypes SynthFACS's
# micro-expression sets use, plus single action units of the upper and lower face.
EVAL_ACTIONS: dict[str, tuple[str, ...]] = {
    **{name: EMOTION_AUS[name]
       for name in ("happiness", "surprise", "disgust", "sadness", "fear", "anger")},
    "brow_raise": ("AU1", "AU2"),
    "brow_lower": ("AU4",),
    "lip_corner_pull": ("AU12",),
    "jaw_drop": ("AU26",),
}


NUISANCE_MODES = ("clean", "talking")


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """The ``eval`` section of a pretraining config (see the module docstring).

    ``num_identities`` held-out people from ``identity_seed`` (a seed the training clips
    never use), drawn by ``renderer`` (SynthFACS, or a renderer the tokenizer never saw);
    the first ``probe_train_identities`` of them fit the probe; every action at
    ``intensity``, and again at ``micro_intensity`` (0 = skip); faces ``"clean"`` or with
    the ``"talking"`` nuisance; ``batch_size`` pairs per compiled call.
    """

    identity_seed: int = 12345
    num_identities: int = 24
    probe_train_identities: int = 16
    intensity: float = 1.0
    micro_intensity: float = 0.25
    nuisance: str = "talking"
    renderer: str = "synthfacs"
    batch_size: int = 64

    def __post_init__(self):
        if self.nuisance not in NUISANCE_MODES:
            raise ValueError(f"eval.nuisance must be one of {NUISANCE_MODES}, got {self.nuisance!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "EvalConfig":
        return dataclass_from_dict(cls, values)


# A pixel counts as moved by the action above this change (gray levels in [0, 1]); the
# talking nuisance is shared within a pair, so only the action moves pixels.
CHANGED_PIXEL_THRESHOLD = 0.02


def eval_action_intensities(intensity: float) -> np.ndarray:
    """float32 [C, A]: the action-unit intensities of every ``EVAL_ACTIONS`` entry, each of
    its units at ``intensity`` (``AU_NAMES`` order)."""
    return np.stack([intensity_vector({au: intensity for au in aus})
                     for aus in EVAL_ACTIONS.values()]).astype(np.float32)


def render_eval_set(identity_seed: int, num_identities: int, size: int, intensity: float,
                    nuisance: str = "clean", renderer: str = "synthfacs") -> dict[str, np.ndarray]:
    """Neutral and action renders of held-out people, drawn by ``renderer``.

    Returns ``neutral`` and ``actions`` float32 [I, C, H, W, 1] (C = len(EVAL_ACTIONS);
    ``neutral[i, c]`` is person i at rest in the same scene and nuisance draw as
    ``actions[i, c]``), and ``action_names`` [C].
    """
    if nuisance not in NUISANCE_MODES:
        raise ValueError(f"eval.nuisance must be one of {NUISANCE_MODES}, got {nuisance!r}")
    face_renderer = get_renderer(renderer)
    num_actions = len(EVAL_ACTIONS)
    intensities = eval_action_intensities(intensity)
    rows = np.repeat(np.arange(num_identities), num_actions)
    people = face_renderer.sample_people(identity_seed, num_identities).take(rows)
    if nuisance == "talking":
        scenes = face_renderer.sample_scenes(
            np.random.default_rng(identity_seed), len(rows), None)
    else:
        scenes = face_renderer.clean_scenes(len(rows))
    # One seed and one row count for both calls: row r gets the same nuisance draw in each.
    neutral = face_renderer.render(people, np.zeros((len(rows), NUM_AUS), np.float32), scenes,
                                   size=size, seed=identity_seed)
    actions = face_renderer.render(people, np.tile(intensities, (num_identities, 1)), scenes,
                                   size=size, seed=identity_seed)
    shape = (num_identities, num_actions, *actions.shape[1:])
    return {"neutral": neutral.reshape(shape), "actions": actions.reshape(shape),
            "action_names": np.asarray(list(EVAL_ACTIONS))}


def fit_linear_probe(features: np.ndarray, labels: np.ndarray, num_classes: int, *,
                     steps: int = 500, learning_rate: float = 0.05,
                     l2: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch Adam: features [N, F], labels int [N].

    Returns (weights [F, K], bias [K]).
    """
    features = jnp.asarray(features, jnp.float32)
    labels = jnp.asarray(labels, jnp.int32)
    params = {"weights": jnp.zeros((features.shape[1], num_classes)),
              "bias": jnp.zeros((num_classes,))}
    optimizer = optax.adam(learning_rate)

    def loss_fn(p):
        logits = features @ p["weights"] + p["bias"]
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return nll + l2 * jnp.sum(jnp.square(p["weights"]))

    @jax.jit
    def fit(p):
        def step(carry, _):
            p, opt_state = carry
            grads = jax.grad(loss_fn)(p)
            updates, opt_state = optimizer.update(grads, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state), None
        (p, _), _ = jax.lax.scan(step, (p, optimizer.init(p)), None, length=steps)
        return p

    fitted = fit(params)
    return np.asarray(fitted["weights"]), np.asarray(fitted["bias"])


def token_one_hot(tokens: np.ndarray, num_codes: int) -> np.ndarray:
    """int [N, L] -> float32 [N, L * num_codes]: one code per position."""
    return np.eye(num_codes, dtype=np.float32)[tokens].reshape(tokens.shape[0], -1)


def probe_accuracy(tokens: np.ndarray, num_codes: int, num_train_identities: int) -> float:
    """Probe tokens [I, C, L] -> action class; fit on the first identities, score the rest."""
    num_identities, num_actions, _ = tokens.shape
    if not 0 < num_train_identities < num_identities:
        raise ValueError(f"probe_train_identities must be in (0, {num_identities}), "
                         f"got {num_train_identities}")
    labels = np.tile(np.arange(num_actions), (num_identities, 1))
    train_x = token_one_hot(tokens[:num_train_identities].reshape(-1, tokens.shape[-1]), num_codes)
    test_x = token_one_hot(tokens[num_train_identities:].reshape(-1, tokens.shape[-1]), num_codes)
    weights, bias = fit_linear_probe(train_x, labels[:num_train_identities].reshape(-1),
                                     num_actions)
    predicted = np.argmax(test_x @ weights + bias, axis=1)
    return float(np.mean(predicted == labels[num_train_identities:].reshape(-1)))


def code_usage(tokens: np.ndarray, num_codes: int) -> tuple[int, float]:
    """(codes in use, perplexity = exp(entropy) of the code histogram) over all tokens."""
    counts = np.bincount(tokens.reshape(-1), minlength=num_codes).astype(np.float64)
    probs = counts / counts.sum()
    nonzero = probs[probs > 0]
    return int(np.sum(counts > 0)), float(np.exp(-np.sum(nonzero * np.log(nonzero))))


MICRO_KEYS = ("action_probe_accuracy", "transfer_error_ratio", "transfer_error_ratio_l1",
              "changed_recon_l1", "changed_unchanged_l1", "changed_pixel_fraction",
              "codes_in_use", "intensity")


def evaluate_tokenizer(params: Any, tokenizer_config: Any, eval_config: EvalConfig
                       ) -> dict[str, Any]:
    """The metrics of the module docstring for a tokenizer (params + TokenizerConfig)."""
    from dface_jax.models.tokenizer import decode_actions, encode_actions

    encode = jax.jit(functools.partial(encode_actions, params, tokenizer_config))
    decode = jax.jit(functools.partial(decode_actions, params, tokenizer_config))
    report = _evaluate_at(encode, decode, tokenizer_config, eval_config, eval_config.intensity)
    if eval_config.micro_intensity > 0:
        micro = _evaluate_at(encode, decode, tokenizer_config, eval_config,
                             eval_config.micro_intensity)
        report["micro"] = {key: micro[key] for key in MICRO_KEYS}
    return report


def _evaluate_at(encode: Callable, decode: Callable, tokenizer_config: Any,
                 eval_config: EvalConfig, intensity: float) -> dict[str, Any]:
    """The metrics with every eval action at ``intensity``."""
    data = render_eval_set(eval_config.identity_seed, eval_config.num_identities,
                           tokenizer_config.image_size, intensity, eval_config.nuisance,
                           eval_config.renderer)
    neutral, actions = data["neutral"], data["actions"]
    if tokenizer_config.channels == 3:  # SynthFACS is gray: give an RGB model gray RGB
        neutral, actions = np.repeat(neutral, 3, axis=-1), np.repeat(actions, 3, axis=-1)
    num_identities, num_actions = actions.shape[:2]
    batch_size = eval_config.batch_size

    sources = neutral.reshape(-1, *neutral.shape[2:])               # [I*C, H, W, C]
    drivings = actions.reshape(-1, *actions.shape[2:])
    tokens = apply_in_batches(encode, sources, drivings, batch_size=batch_size)
    recon = apply_in_batches(decode, sources, tokens, batch_size=batch_size)
    tokens_by_identity = tokens.reshape(num_identities, num_actions, -1)
    changed = np.abs(drivings - sources) > CHANGED_PIXEL_THRESHOLD
    # One still pair per person (the neutral renders of a person differ only in nuisance).
    still_sources = neutral[:, 0]
    still_tokens = apply_in_batches(encode, still_sources, still_sources, batch_size=batch_size)
    still = apply_in_batches(decode, still_sources, still_tokens, batch_size=batch_size)

    # Transfer: person A's tokens on person B = A + offset (mod I), for every action.
    offsets = [k for k in (1, 2, 3) if k < num_identities]
    target_rows = [(a + k) % num_identities for k in offsets for a in range(num_identities)]
    source_rows = [a for _ in offsets for a in range(num_identities)]
    transfer_tokens = tokens_by_identity[source_rows].reshape(-1, tokens.shape[-1])
    transfer_sources = neutral[target_rows].reshape(-1, *neutral.shape[2:])
    transfer_truth = actions[target_rows].reshape(-1, *actions.shape[2:])
    transferred = apply_in_batches(decode, transfer_sources, transfer_tokens, batch_size=batch_size)
    transfer_residual = transferred - transfer_truth
    unchanged_residual = transfer_sources - transfer_truth
    transfer_mse = float(np.mean(np.square(transfer_residual)))
    unchanged_mse = float(np.mean(np.square(unchanged_residual)))
    transfer_l1 = float(np.mean(np.abs(transfer_residual)))
    unchanged_l1 = float(np.mean(np.abs(unchanged_residual)))

    codes_in_use, perplexity = code_usage(tokens, tokenizer_config.codebook_size)
    return {
        "recon_l1": float(np.mean(np.abs(recon - drivings))),
        "unchanged_l1": float(np.mean(np.abs(sources - drivings))),
        "changed_recon_l1": float(np.mean(np.abs(recon - drivings)[changed])),
        "changed_unchanged_l1": float(np.mean(np.abs(sources - drivings)[changed])),
        "changed_pixel_fraction": float(np.mean(changed)),
        "still_pair_l1": float(np.mean(np.abs(still - still_sources))),
        "codes_in_use": codes_in_use,
        "perplexity": perplexity,
        "action_probe_accuracy": probe_accuracy(
            tokens_by_identity, tokenizer_config.codebook_size,
            eval_config.probe_train_identities),
        "probe_chance": 1.0 / num_actions,
        "transfer_error_ratio": transfer_mse / unchanged_mse,
        "transfer_error_ratio_l1": transfer_l1 / unchanged_l1,
        "transfer_mse": transfer_mse,
        "unchanged_mse": unchanged_mse,
        "num_identities": int(num_identities),
        "actions": list(EVAL_ACTIONS),
        "intensity": float(intensity),
        "nuisance": eval_config.nuisance,
        "renderer": eval_config.renderer,
    }


def evaluate_workdir(workdir: str | os.PathLike, step: int | None = None,
                     overrides: dict | None = None) -> dict[str, Any]:
    """Evaluates the tokenizer of a tokenizer workdir with its config's ``eval`` section
    (fields replaced by ``overrides``)."""
    from dface_jax import workdir as workdir_lib
    from dface_jax.runtime.checkpoint import latest_step

    params, tokenizer_config = workdir_lib.restore_tokenizer(workdir, step)
    config = workdir_lib.read_config(workdir)
    eval_config = EvalConfig.from_dict({**(config.eval.to_dict() if "eval" in config else {}),
                                        **(overrides or {})})
    report = evaluate_tokenizer(params, tokenizer_config, eval_config)
    report["step"] = latest_step(workdir) if step is None else step
    report["workdir"] = str(workdir)
    return report
