"""The GPU check for rigs: ``pytest -m gpu`` (skips without a CUDA device)."""
