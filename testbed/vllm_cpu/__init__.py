"""vLLM's CPU build as the testbed's real engine: its install (install.py) and the tiny model (tiny_model.py)."""
