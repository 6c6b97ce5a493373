"""The HTTP face of the simulator: vLLM's OpenAI-compatible routes on aiohttp.

Routes: POST /v1/completions, POST /v1/chat/completions (streaming SSE or not), GET /v1/models,
GET /health (200 empty; 503 once the engine is dead), GET /version (vLLM's `{"version": ...}` plus
`"simulator": "lws-vllm-suite"`, which real vLLM never sends: a client can tell what served it), GET /metrics, GET /load, GET|POST /ping,
and POST /_sim/crash when test hooks are on. `--break-answer` answers one route wrongly (`_broken`), as an
engine wrong in that way would, so a self-test can show the check of that route failing. A request is read and checked (`protocol.py`,
`request_limits.py`; refusals in `request_errors.py`), handed to the engine (`runner.py`), and answered
as one JSON body (`responses.py`) or as SSE frames (`stream_frames.py`). Every request is counted
in the HTTP metrics of prometheus-fastapi-instrumentator (http_metrics.py) by its route template.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from testbed.engine.identity import SIMULATOR_FIELD, SIMULATOR_NAME
from testbed.engine.metrics import CONTENT_TYPE, EngineMetrics
from testbed.engine.prefix_cache import PrefixCache
from testbed.engine.profiles import Profile
from testbed.engine.protocol import GenerationRequest, parse_chat, parse_completion
from testbed.engine.request_errors import RequestError, json_error
from testbed.engine.request_limits import check_context
from testbed.engine.request_state import StreamState, record_abort, record_token
from testbed.engine.responses import (
    completion_body,
    engine_dead,
    error_response,
    json_response,
    models_body,
)
from testbed.engine.runner import EngineRunner
from testbed.engine.scheduler import SimRequest
from testbed.engine.stream_frames import SSE_HEADERS, StreamFrames, error_frames
from testbed.engine.tokenize_route import tokenize, tokenize_answer
from testbed.engine.tokens import output_text, plan_output


@dataclass(frozen=True)
class ServeConfig:
    served_model_names: tuple[str, ...]
    model_path: str
    max_model_len: int
    seed: int
    profile: Profile
    api_key: str | None = None
    enable_test_hooks: bool = False
    force_include_usage: bool = False
    fail_after_requests: int | None = None
    break_answer: str | None = None  # completion | streaming | health | metrics (cli.BREAKABLE_ANSWERS)
    execute_model_timeout_s: float = 300.0  # vLLM's VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS


# concurrent.futures' RuntimeError when the engine client's executor is already shut down (vLLM 0.32, measured)
SHUTDOWN_MESSAGE = "cannot schedule new futures after shutdown"


class SimServer:
    """Builds the aiohttp app around an `EngineRunner`; `on_fatal` is called when the engine dies."""

    def __init__(
        self,
        config: ServeConfig,
        runner_factory: Callable[[Callable[[SimRequest, float], None]], EngineRunner],
        metrics: EngineMetrics,
        on_fatal: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.profile = config.profile
        self.metrics = metrics
        self.runner = runner_factory(self._on_token)
        self.on_fatal = on_fatal
        self.dead: str | None = None
        self.peer_lost: str | None = None
        self.shutting_down = False  # SIGTERM while serving (shut_down)
        self._stall: asyncio.TimerHandle | None = None
        self._ids = itertools.count()
        self._requests_seen = 0
        self._live: set[StreamState] = set()
        self.created = int(time.time())
        self.v032 = self.profile.has("response_fields_v032")
        digest = hashlib.blake2b(
            f"{config.model_path}:{config.max_model_len}:{config.seed}".encode(), digest_size=4
        ).hexdigest()
        self.fingerprint = f"vllm-{self.profile.version_text}-{digest}"
        core = self.runner.core
        memory, sched = core.memory, core.perf.scheduler
        self.prefix_cache = PrefixCache(memory.block_size, memory.num_gpu_blocks)
        metrics.configure(
            max_model_len=config.max_model_len,
            cache_info={
                "block_size": memory.block_size,
                "effective_attention_block_size": memory.block_size,
                "gpu_memory_utilization": sched.gpu_memory_utilization,
                "num_gpu_blocks": memory.num_gpu_blocks,
                "kv_cache_size_tokens": memory.kv_tokens,
                "kv_cache_max_concurrency": round(memory.kv_tokens / config.max_model_len, 2),
                "kv_cache_memory_bytes": int(memory.kv_cache_bytes_per_gpu),
            },
        )

    # --- engine side ---------------------------------------------------------------------------------
    @property
    def wall_per_sim_s(self) -> float:
        """Wall seconds per simulated second: the metrics report wall time, as vLLM does (it times requests
        with the host clock), so the server's histograms agree with what a client measures. At time scale 0
        (no pacing) simulated seconds are reported: there is no wall time to speak of."""
        return self.runner.scale if self.runner.scale > 0 else 1.0

    def _on_token(self, req: SimRequest, t: float) -> None:
        if self.peer_lost is not None:  # the step that made it waits for the lost node: nobody sees it
            return
        state: StreamState = req.payload  # type: ignore[assignment]
        record_token(self.metrics, req, state, t, self.wall_per_sim_s)
        if req.finished:
            self._live.discard(state)
        state.wake()

    def kill(self, reason: str) -> None:
        """The engine died (test hook or injected fault): fail every request, /health turns 503."""
        if self.dead is not None:
            return
        self.dead = reason
        if self._stall is not None:
            self._stall.cancel()
        for state in list(self._live):
            state.error = reason
            state.wake()
        self._live.clear()
        if self.on_fatal is not None:
            self.on_fatal(reason)

    def lose_peer(self, reason: str) -> None:
        """A node of the group went away. vLLM's leader does not notice until its engine next needs that node:
        /health still answers 200, and the next model step (one in flight now, or the next request's) waits for
        the lost ranks' answer until the execute-model timeout (`execute_model_timeout_s`, vLLM's
        VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS); then the engine core dies and every request waiting fails
        (measured on vLLM's CPU build, tests/testbed/engine/test_fidelity_peer_loss.py)."""
        if self.peer_lost is not None or self.dead is not None:
            return
        self.peer_lost = reason
        stalled = [s for s in self._live if s.req is not None and not s.done]
        for state in stalled:
            assert state.req is not None
            self.runner.abort(state.req)
        if stalled:
            self._stall_step()

    def shut_down(self) -> int:
        """SIGTERM while serving, as vLLM 0.32's API server takes it. vLLM's SIGTERM handler cancels the uvicorn
        server task and returns `server.shutdown()` (vllm/entrypoints/launcher.py serve_http, signal_handler),
        which closes the listener and waits for open connections to close; measured on the CPU build with streams
        in flight (the common outcome of a racy shutdown): requests arriving in the first moments get 500
        "cannot schedule new futures after shutdown" (the engine client's executor is already shut down), the
        in-flight streams get no more tokens and never end, the listener closes, and the process runs on until
        SIGKILL. Here: the engine steps no more (every live request is aborted without an answer) and new
        requests are refused so; app.py closes the listener and waits. Returns the streams left hanging."""
        self.shutting_down = True
        hanging = [s for s in self._live if s.req is not None and not s.done]
        for state in hanging:
            assert state.req is not None
            self.runner.abort(state.req)
        if self._stall is not None:
            self._stall.cancel()
        return len(hanging)

    def _stall_step(self) -> None:
        if self._stall is None and self.dead is None:
            self._stall = asyncio.get_running_loop().call_later(
                self.config.execute_model_timeout_s,
                self.kill,
                f"RPC call to execute_model timed out. ({self.peer_lost})",
            )

    def _submit(self, gen: GenerationRequest, max_tokens: int) -> StreamState:
        """Plan the request's output (seeded by its prompt) and hand it to the engine."""
        plan = plan_output(
            seed=self.config.seed if gen.seed is None else gen.seed,
            key=gen.prompt_key,
            max_tokens=max_tokens,
            min_tokens=gen.min_tokens,
            ignore_eos=gen.ignore_eos,
        )
        state = StreamState(plan, max_tokens)
        req = SimRequest(
            rid=next(self._ids), prompt_tokens=gen.prompt_tokens, output_tokens=plan.tokens, payload=state
        )
        if gen.prompt_ids:  # the cached prefix's KV need not be computed again: a shorter prefill
            req.cached = req.computed = self.prefix_cache.admit(gen.prompt_ids)
        state.req = req
        self._live.add(state)
        if self.peer_lost is not None:  # the engine's next step waits for the lost node (lose_peer)
            self._stall_step()
        else:
            self.runner.submit(req)
        return state

    def _abort(self, state: StreamState) -> None:
        req = state.req
        if req is not None and not state.done:
            self.runner.abort(req)
            self._live.discard(state)
            record_abort(self.metrics, req, state, self.runner.virtual_now(), self.wall_per_sim_s)

    # --- app ----------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 2**20, middlewares=[self._http_metrics])
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/version", self.version)
        app.router.add_get("/metrics", self.metrics_endpoint)
        app.router.add_get("/load", self.load)
        app.router.add_post("/tokenize", self.tokenize)
        app.router.add_route("*", "/ping", self.health)
        if self.config.enable_test_hooks:
            app.router.add_post("/_sim/crash", self.crash_hook)
        app.on_startup.append(self._start_runner)
        app.on_shutdown.append(self._stop_runner)
        return app

    async def _start_runner(self, _app: web.Application) -> None:
        self.runner.start()

    async def _stop_runner(self, _app: web.Application) -> None:
        await self.runner.stop()

    @web.middleware
    async def _http_metrics(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Count the request as prometheus-fastapi-instrumentator does: by route template, status class,
        Content-Length in and out (0 for a stream), and the time until the whole body was sent."""
        started = time.perf_counter()
        status, response = 500, None
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            self.metrics.on_http(
                resource.canonical if resource is not None else "none",
                request.method,
                status,
                request.content_length or 0,
                (response.content_length or 0) if response is not None else 0,
                time.perf_counter() - started,
            )

    # --- checks --------------------------------------------------------------------------------------
    def _error(self, err: RequestError) -> web.Response:
        return error_response(self.profile, err)

    def _check_auth(self, request: web.Request) -> web.Response | None:
        key = self.config.api_key
        if key is None or request.headers.get("Authorization") == f"Bearer {key}":
            return None
        return json_response({"error": "Unauthorized"}, status=401)

    async def _read_json(self, request: web.Request) -> Any:
        try:
            return json.loads(await request.read())
        except json.JSONDecodeError as exc:
            raise json_error(self.profile, exc) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"The request body is not valid JSON: {exc}") from None

    def _check_model(self, req: GenerationRequest) -> str:
        names = self.config.served_model_names
        if req.model is None:
            return names[0]
        if req.model not in names:
            valid = f" Valid aliases: {', '.join(names)}." if self.v032 else ""
            raise RequestError(
                f"The model `{req.model}` does not exist.{valid}",
                status=404,
                err_type="NotFoundError",
                param="model",
            )
        return req.model

    def _check_alive(self) -> None:
        """Refuse once the engine is dead; count the request, and die on it if a fault is injected."""
        if self.dead is not None:
            raise engine_dead(self.dead)
        if self.shutting_down:
            raise RequestError(SHUTDOWN_MESSAGE, status=500, err_type="InternalServerError")
        self._requests_seen += 1
        fail_after = self.config.fail_after_requests
        if fail_after is not None and self._requests_seen >= fail_after:
            self.kill(
                f"simulated fault injected on request {self._requests_seen} (--fail-after-requests {fail_after})"
            )
            raise engine_dead(str(self.dead))

    # --- routes --------------------------------------------------------------------------------------
    def _broken(self, answer: str) -> bool:
        return self.config.break_answer == answer

    async def health(self, _request: web.Request) -> web.Response:
        if self.dead is not None or self._broken("health"):
            return web.Response(status=503)
        return web.Response(status=200)

    async def version(self, _request: web.Request) -> web.Response:
        return json_response({"version": self.profile.version_text, SIMULATOR_FIELD: SIMULATOR_NAME})

    async def load(self, _request: web.Request) -> web.Response:
        core = self.runner.core
        return json_response({"server_load": core.num_running + core.num_waiting})

    async def metrics_endpoint(self, _request: web.Request) -> web.Response:
        text = self.metrics.render()
        if self._broken("metrics"):  # the HTTP server's own series only, as an exporter missing vLLM's
            text = "".join(line for line in text.splitlines(keepends=True) if "vllm:" not in line)
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})

    async def models(self, request: web.Request) -> web.Response:
        if (denied := self._check_auth(request)) is not None:
            return denied
        c = self.config
        return json_response(
            models_body(
                c.served_model_names,
                created=self.created,
                model_path=c.model_path,
                max_model_len=c.max_model_len,
            )
        )

    async def tokenize(self, request: web.Request) -> web.Response:
        """vLLM's `POST /tokenize`, with the simulator's tokens (tokenize_route.py)."""
        if (denied := self._check_auth(request)) is not None:
            return denied
        try:
            tokenized = tokenize(await self._read_json(request))
            if tokenized.model is not None and tokenized.model not in self.config.served_model_names:
                raise RequestError(
                    f"The model `{tokenized.model}` does not exist.", status=404, err_type="NotFoundError"
                )
        except RequestError as err:
            return self._error(err)
        return json_response(tokenize_answer(tokenized.tokens, self.config.max_model_len))

    async def crash_hook(self, request: web.Request) -> web.Response:
        reason = request.query.get("reason", "CUDA error: an illegal memory access was encountered")
        self.kill(reason)
        return json_response({"crashed": True, "reason": reason})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        if (denied := self._check_auth(request)) is not None:
            return denied
        try:
            body = await self._read_json(request)
            gen = parse_chat(body, self.profile) if chat else parse_completion(body, self.profile)
            model = self._check_model(gen)
            max_tokens = check_context(gen, self.config.max_model_len, self.profile)
            self._check_alive()
        except RequestError as err:
            return self._error(err)
        state = self._submit(gen, max_tokens)
        assert state.req is not None
        digest = hashlib.blake2b(f"{self.config.seed}:{state.req.rid}".encode(), digest_size=16).hexdigest()
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{digest}"
        if not gen.stream:
            return await self._whole(state, gen, rid, model, chat)
        forced = self.config.force_include_usage
        frames = StreamFrames(
            rid=rid,
            model=model,
            chat=chat,
            created=int(time.time()),
            prompt_tokens=gen.prompt_tokens,
            include_usage=gen.include_usage or forced,
            continuous=gen.continuous_usage or forced,
            v032=self.v032,
            fingerprint=self.fingerprint,
        )
        return await self._stream(request, state, frames)

    # --- answers -------------------------------------------------------------------------------------
    async def _whole(
        self, state: StreamState, gen: GenerationRequest, rid: str, model: str, chat: bool
    ) -> web.StreamResponse:
        try:
            while not state.done and state.error is None:
                await state.wait()
        except asyncio.CancelledError:
            self._abort(state)
            raise
        if state.error is not None:
            return self._error(engine_dead(state.error))
        req = state.req
        assert req is not None
        body = completion_body(
            rid=rid,
            model=model,
            chat=chat,
            created=int(time.time()),
            text=output_text(state.plan, 0, req.generated),
            finish_reason=state.finish_reason,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=req.generated,
            v032=self.v032,
            fingerprint=self.fingerprint,
        )
        if self._broken("completion"):
            body.pop("usage", None)
        return json_response(body)

    async def _stream(
        self, request: web.Request, state: StreamState, frames: StreamFrames
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers=SSE_HEADERS)
        req = state.req
        assert req is not None
        try:
            await resp.prepare(request)
            if frames.chat:
                await resp.write(frames.role_frame())
            sent = 0
            while True:
                if req.generated == sent and not state.done and state.error is None:
                    await state.wait()
                if state.error is not None:
                    await resp.write(error_frames(self.profile, state.error))
                    return resp
                upto = req.generated
                out = frames.tokens(state.plan, sent, upto, state.finish_reason if state.done else None)
                sent = upto
                if state.done:
                    closing = frames.closing(sent)
                    if self._broken("streaming"):  # the stream just ends, without data: [DONE]
                        closing = closing[:-1]
                    await resp.write(b"".join(out + closing))
                    break
                if out:
                    await resp.write(b"".join(out))
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self._abort(state)
            raise
        return resp
