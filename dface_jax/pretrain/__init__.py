"""Tokenizer pretraining: the train step (step.py), its data (data.py), the loop (loop.py) and the evaluation on held-out faces (evaluate.py)."""
