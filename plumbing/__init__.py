"""Cluster and command-line plumbing shared by the fixtures, the testbed and the load generator: the one wait
helper and its named conditions (`wait.py`), finding kubectl (`kubectl.py`), `kubectl port-forward`
(`port_forward.py`), free local ports (`ports.py`), ending child processes (`processes.py`), every CLI's value parsers (`argtypes.py`) and pydantic's
validation errors as the one line a user reads (`validation_errors.py`). A leaf: it imports nothing of ours
and no test framework (docs/architecture.md)."""
