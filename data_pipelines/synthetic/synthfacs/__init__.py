"""SynthFACS: a fast procedural grayscale face generator with FACS action units (the
renderer the tokenizer pretrains on; see docs/INTERFACES.md "SynthFACS")."""
