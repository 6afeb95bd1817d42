"""The token cache: its schema (cache.py) and how a frozen tokenizer fills it (extract.py)."""
