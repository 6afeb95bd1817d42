"""Micro-expression datasets as their owners distribute them (CASME II, SAMM, SMIC-HS, the composite set, CAS(ME)^3 Part A) -> TFDS builds -> MER samples."""
