"""The decoder's own bound: how well it renders an action it is told exactly.

    python benchmarks/decoder_oracle.py [--config pretrain_synthetic.py] [--steps 1600]
                                        [--init WORKDIR] [--config.tokenizer.decoder_warp=True ...]

Trains the tokenizer's decoder (the same module and config, the same SynthFACS training
clips, optimizer and schedule as ``dface-jax pretrain``) conditioned on the *true* action
intensities of the two frames instead of on tokens: a small MLP maps (source intensities,
driving intensities, their difference) to the 16 action vectors the decoder cross-attends
to. It then decodes every held-out eval person's neutral face with the true intensities of
each ``eval-tokenizer`` action and prints the squared error over that of copying the
source, per action, on clean and on talking faces, at ``eval.intensity`` and
``eval.micro_intensity``. A tokenizer cannot transfer an action better than its decoder
renders an action it knows exactly, so at the same budget this is a floor under
``eval-tokenizer``'s self-decoding and transfer ratios.

Pairs are drawn as ``pretrain`` draws them (one clip, frames ``data.min_gap`` to
``data.max_gap`` apart, either order), without the flip and brightness augmentation.
``--init WORKDIR`` takes the patch embedding of a pretrained tokenizer (what the decoder's
stop-gradient queries read; the decoder cannot train it); the decoder itself starts fresh.
Without it the patch embedding stays at its random init.
Prints a JSON line last.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from data_pipelines.synthetic import NUM_AUS
from dface_jax.configs import load_config
from dface_jax.models.tokenizer import ActionTokenizer, TokenizerConfig
from dface_jax.pretrain.data import synthetic_talking_chunks
from dface_jax.pretrain.evaluate import eval_action_intensities, render_eval_set
from dface_jax.pretrain.step import make_optimizer
from dface_jax.runtime.batching import apply_in_batches
from dface_jax.runtime.checkpoint import restore_params


class OracleDecoder(nn.Module):
    """The tokenizer's decoder fed action vectors computed from true action intensities."""

    config: TokenizerConfig

    def setup(self):
        self.tokenizer = ActionTokenizer(self.config)
        self.hidden = nn.Dense(256)
        self.to_actions = nn.Dense(self.config.code_seq_len * self.config.dim)

    def __call__(self, source, source_intensities, driving_intensities):
        features = jnp.concatenate([source_intensities, driving_intensities,
                                    driving_intensities - source_intensities], axis=-1)
        vectors = self.to_actions(nn.gelu(self.hidden(features)))
        vectors = vectors.reshape(source.shape[0], self.config.code_seq_len, self.config.dim)
        return self.tokenizer.decode_from_action_vectors(source, vectors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="pretrain_synthetic.py")
    parser.add_argument("--steps", type=int, default=None, help="default: train.num_steps")
    parser.add_argument("--init", default=None, help="a pretrained tokenizer workdir")
    args, overrides = parser.parse_known_args()
    config = load_config(args.config, overrides)
    steps = args.steps or config.train.num_steps
    tokenizer_config = TokenizerConfig.from_dict(config.tokenizer.to_dict())
    size, batch_size = tokenizer_config.image_size, config.train.batch_size
    num_aus = NUM_AUS

    chunks = list(synthetic_talking_chunks(config.data, size))
    frames = np.concatenate([chunk["frames"] for chunk in chunks])
    intensities = np.concatenate([chunk["au_intensities"] for chunk in chunks])

    model = OracleDecoder(tokenizer_config)
    example = jnp.zeros((batch_size, size, size, tokenizer_config.channels))
    example_aus = jnp.zeros((batch_size, num_aus))
    params = model.init(jax.random.PRNGKey(config.seed), example, example_aus,
                        example_aus)["params"]
    if args.init:
        pretrained = restore_params(args.init)["patch_embedding"]
        found = jax.tree.map(np.shape, pretrained)
        expected = jax.tree.map(np.shape, params["tokenizer"]["patch_embedding"])
        if found != expected:
            parser.error(f"--init {args.init}: its patch embedding {found} does not fit this "
                         f"config's {expected}; pass the config (and overrides) it was "
                         "trained with")
        params = {**params, "tokenizer": {**params["tokenizer"],
                                          "patch_embedding": jax.tree.map(jnp.asarray, pretrained)}}
    optimizer = make_optimizer(config.train)
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, source, driving, source_aus, driving_aus):
        def loss_fn(p):
            recon = model.apply({"params": p}, source, source_aus, driving_aus)
            return jnp.mean((recon - driving) ** 2)
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(config.data.seed)
    data = config.data
    start = time.perf_counter()
    for step in range(steps):
        clip = rng.integers(0, len(frames), batch_size)
        gap = rng.integers(data.min_gap, data.max_gap + 1, batch_size)
        first = rng.integers(0, data.num_frames - gap)
        swap = rng.uniform(size=batch_size) < 0.5
        source_t, driving_t = np.where(swap, first + gap, first), np.where(swap, first, first + gap)
        params, opt_state, loss = train_step(params, opt_state, frames[clip, source_t],
                                             frames[clip, driving_t],
                                             intensities[clip, source_t],
                                             intensities[clip, driving_t])
        if step % max(1, steps // 8) == 0:
            print(f"step {step}: loss {float(loss):.3g}", flush=True)
    train_seconds = time.perf_counter() - start

    decode = jax.jit(lambda source, aus: model.apply({"params": params}, source,
                                                     jnp.zeros_like(aus), aus))
    report = {"steps": steps, "train_seconds": round(train_seconds, 1),
              "decoder_warp": tokenizer_config.decoder_warp, "init": args.init}
    levels = [config.eval.intensity] + ([config.eval.micro_intensity]
                                        if config.eval.micro_intensity else [])
    for intensity in levels:
        for nuisance in ("clean", "talking"):
            eval_set = render_eval_set(config.eval.identity_seed, config.eval.num_identities,
                                       size, intensity, nuisance)
            people, actions = eval_set["neutral"].shape[:2]
            source = eval_set["neutral"].reshape(-1, *eval_set["neutral"].shape[2:])
            target = eval_set["actions"].reshape(source.shape)
            aus = np.tile(eval_action_intensities(intensity), (people, 1))
            recon = apply_in_batches(decode, source, aus, batch_size=config.eval.batch_size)
            error = ((recon - target) ** 2).reshape(people, actions, -1).mean(axis=(0, 2))
            copy = ((source - target) ** 2).reshape(people, actions, -1).mean(axis=(0, 2))
            ratio = float(error.sum() / copy.sum())
            report[f"ratio_{nuisance}_{intensity:g}"] = round(ratio, 3)
            per_action = " ".join(f"{name}={e / c:.2f}"
                                  for name, e, c in zip(eval_set["action_names"], error, copy))
            print(f"intensity {intensity:g}, {nuisance}: decoded / copying {ratio:.3f} "
                  f"({per_action})", flush=True)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
