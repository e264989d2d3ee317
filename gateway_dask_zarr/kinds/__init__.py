"""Job kinds: what a job computes (random, rechunk, reduce), each one module, listed in kinds/registry.py."""
