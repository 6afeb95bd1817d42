"""Leave-one-subject-out evaluation: folds, the vmapped sweep and its sequential reference, the protocol (honest / oracle epoch), experiments, comparisons and the MEGC scores."""
