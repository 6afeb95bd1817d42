"""The tokenizer and the token classifier as one module, for joint fine-tuning during LOSO.

The released MER script (``train_casme3_4c.py``) keeps training the pretrained tokenizer
on each fold's (onset, apex) pairs while the classifier trains: every step, the tokenizer
takes a step on ``0.1 * reconstruction loss`` and the classifier a step on its own loss,
computed on the tokenizer's current action vectors *detached*. So the classifier's loss
never reaches the tokenizer, and the tokenizer only adapts to the micro-expression frames
(their resolution, light and people) through reconstruction.

:class:`TokenizerAndClassifier` computes both in one pass. Its params are
``{"tokenizer": ..., "classifier": ...}``; the action vectors enter the classifier under
``stop_gradient``, so the gradient of ``classifier loss + w * tokenizer_loss`` is the
classifier loss's for the classifier and ``w`` times the tokenizer loss's for the
tokenizer: one AdamW over both equals the release's two AdamWs with the same settings
(AdamW is elementwise). The weight ``w`` is ``train.tokenizer_loss_weight`` of the LOSO
config (``loso.step.loss_terms`` adds it), not a field of this module.

Not supported: dead-code restarts (a pretraining-time mechanism); the quantizer's codebook
is trained by its loss terms like every other parameter.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from dface_jax.models.token_classifier import ClassifierConfig, TokenClassifier
from dface_jax.models.tokenizer import ActionTokenizer, TokenizerConfig


def check_joint_configs(tokenizer_config: TokenizerConfig, classifier_config: ClassifierConfig
                        ) -> None:
    """Raises if the two configs cannot be chained (widths, token count)."""
    if classifier_config.input_dim != tokenizer_config.dim:
        raise ValueError(f"classifier input_dim {classifier_config.input_dim} != tokenizer dim "
                         f"{tokenizer_config.dim} (the action vectors' width)")
    if classifier_config.seq_len != tokenizer_config.code_seq_len:
        raise ValueError(f"classifier seq_len {classifier_config.seq_len} != tokenizer "
                         f"code_seq_len {tokenizer_config.code_seq_len}")


class TokenizerAndClassifier(nn.Module):
    """(onset, apex) pairs -> the classifier's outputs plus the tokenizer's own loss."""

    tokenizer_config: TokenizerConfig
    classifier_config: ClassifierConfig

    def setup(self):
        check_joint_configs(self.tokenizer_config, self.classifier_config)
        self.tokenizer = ActionTokenizer(self.tokenizer_config)
        self.classifier = TokenClassifier(self.classifier_config)

    def __call__(self, pairs: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        """pairs [B, 2, H, W, C] (onset, apex) in [0, 1] -> the classifier's dict (logits,
        text_features, attention, pooling_entropy) plus, with ``train=True``, ``tokenizer_loss``
        (reconstruction + quantizer loss of the apex from the onset, a scalar).

        ``train=True`` needs a ``"dropout"`` rng, and an ``"nsvq"`` rng with the NSVQ
        quantizer.
        """
        if pairs.ndim != 5 or pairs.shape[1] != 2:
            raise ValueError(f"TokenizerAndClassifier expects (onset, apex) pairs [B, 2, H, W, C], "
                             f"got {tuple(pairs.shape)}")
        onset, apex = pairs[:, 0], pairs[:, 1]
        if train:
            tokenized = self.tokenizer(onset, apex, train=True)
            action_tokens, tokenizer_loss = tokenized["action_tokens"], tokenized["losses"]["total"]
        else:  # scoring needs the tokens only, not the reconstruction
            action_tokens, tokenizer_loss = self.tokenizer.encode(onset, apex), None
        # Hard codes after the output projection, as extract-tokens caches them; detached,
        # as in the release, so the classifier's loss does not reach the tokenizer.
        action_vectors = jax.lax.stop_gradient(self.tokenizer.embed_tokens(action_tokens))
        outputs = dict(self.classifier(action_vectors, train=train))
        if tokenizer_loss is not None:
            outputs["tokenizer_loss"] = tokenizer_loss
        return outputs
