"""Cluster plumbing shared by the fixtures, the testbed and the Locust runner: the one wait helper and its named
conditions (`wait.py`), finding kubectl (`kubectl.py`), `kubectl port-forward` (`port_forward.py`) and free local
ports (`ports.py`). A leaf: it imports nothing of ours and no test framework (docs/architecture.md)."""
