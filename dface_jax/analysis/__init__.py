"""Analysis of trained runs: load checkpoints, encode and re-apply actions, draw pictures.

``load_tokenizer`` / ``load_classifier`` (:mod:`.load`) restore models from their
workdirs; :mod:`.plots` draws PNGs from arrays; :mod:`.report` builds a run's report.
"""

from dface_jax.analysis.load import Classifier, Tokenizer, load_classifier, load_tokenizer

__all__ = ["Classifier", "Tokenizer", "load_classifier", "load_tokenizer"]
