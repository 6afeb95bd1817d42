"""Micro-expression datasets as their owners distribute them (CASME II, SAMM, SMIC-HS, the composite set) -> TFDS builds -> MER samples."""
