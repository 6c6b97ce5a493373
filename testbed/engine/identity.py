"""How the simulator names itself to a client: GET /version answers vLLM's ``{"version": ...}`` plus
``"simulator": "lws-vllm-suite"``. Real vLLM's /version has only ``version`` (vllm/entrypoints/openai/api_server.py,
``show_version``), so a client that finds the field knows the simulator served it, whatever it was told."""

from __future__ import annotations

SIMULATOR_FIELD = "simulator"
SIMULATOR_NAME = "lws-vllm-suite"
