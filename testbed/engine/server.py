"""The HTTP face of the simulator: vLLM's OpenAI-compatible routes on aiohttp.

Routes: POST /v1/completions, POST /v1/chat/completions (streaming SSE or not), GET /v1/models,
GET /health (200 empty; 503 once the engine is dead), GET /version, GET /metrics, GET /load, GET|POST /ping,
and POST /_sim/crash when test hooks are on. Streams are `data: <json>\\n\\n` frames ending with
`data: [DONE]\\n\\n`; with `stream_options.include_usage` a last frame has `"choices": []` and the usage,
with `continuous_usage_stats` every frame carries the usage so far. Bodies and chunks have the fields of
the profile's vLLM (from 0.32: token_ids, system_fingerprint on the last frame, ...; see profiles.py), and
JSON is served as `application/json` without a charset, as Starlette serves it. Every request is counted
in the HTTP metrics of prometheus-fastapi-instrumentator (metrics.py) by its route template.

Hot path: the JSON of a token frame is a per-request prefix, the token's pre-escaped text and a fixed
suffix, joined as bytes; a stream writes every token that is ready in one `write` (`runner.py` batches
engine steps at time-scale 0), so one core streams tens of thousands of tokens per second.
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

from testbed.engine.metrics import CONTENT_TYPE, EngineMetrics
from testbed.engine.profiles import Profile
from testbed.engine.protocol import GenerationRequest, parse_chat, parse_completion
from testbed.engine.request_errors import RequestError, error_body, json_error
from testbed.engine.request_limits import check_context
from testbed.engine.runner import EngineRunner
from testbed.engine.scheduler import SimRequest
from testbed.engine.tokens import VOCAB_BYTES, OutputPlan, output_text, plan_output, token_index

DONE_FRAME = b"data: [DONE]\n\n"


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _json(body: Any, status: int = 200) -> web.Response:
    """JSON as Starlette (vLLM's server) writes it: compact, UTF-8, `application/json` without a charset."""
    return web.Response(body=_compact(body).encode(), status=status, content_type="application/json")


SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}


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


class StreamState:
    """What a waiting HTTP handler needs from the engine for one request."""

    __slots__ = ("done", "error", "finish_reason", "last_t", "max_tokens", "plan", "req", "waiter")

    def __init__(self, plan: OutputPlan, max_tokens: int | None = None) -> None:
        self.plan = plan
        self.max_tokens = max_tokens
        self.req: SimRequest | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.done = False
        self.error: str | None = None
        self.finish_reason = plan.finish_reason
        self.last_t = 0.0

    def wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    async def wait(self) -> None:
        self.waiter = asyncio.get_running_loop().create_future()
        await self.waiter
        self.waiter = None


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
        state: StreamState = req.payload  # type: ignore[assignment]
        m = self.metrics
        w = self.wall_per_sim_s
        if req.generated == 1:
            m.on_first_token(
                req.prompt_tokens,
                (t - req.arrival) * w,
                ((req.scheduled_at or req.arrival) - req.arrival) * w,
            )
            m.on_tokens((), 1)
        else:
            m.on_tokens(((t - state.last_t) * w,), 1)
        state.last_t = t
        if req.finished:
            state.done = True
            first = req.first_token_at
            tpot = (t - first) * w / (req.generated - 1) if req.generated > 1 and first is not None else None
            scheduled = req.scheduled_at if req.scheduled_at is not None else req.arrival
            m.on_finished(
                state.finish_reason,
                (t - req.arrival) * w,
                req.generated,
                tpot,
                prompt_tokens=req.prompt_tokens,
                max_tokens=state.max_tokens,
                phases=((t - scheduled) * w, ((first or t) - scheduled) * w, (t - (first or t)) * w),
                preemptions=req.preemptions,
            )
            self._live.discard(state)
        state.wake()

    def kill(self, reason: str) -> None:
        """The engine died (test hook or injected fault): fail every request, /health turns 503."""
        if self.dead is not None:
            return
        self.dead = reason
        for state in list(self._live):
            state.error = reason
            state.wake()
        self._live.clear()
        if self.on_fatal is not None:
            self.on_fatal(reason)

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

    # --- helpers -------------------------------------------------------------------------------------
    def _error(self, err: RequestError) -> web.Response:
        return _json(error_body(self.profile, err), status=err.status)

    def _check_auth(self, request: web.Request) -> web.Response | None:
        key = self.config.api_key
        if key is None or request.headers.get("Authorization") == f"Bearer {key}":
            return None
        return _json({"error": "Unauthorized"}, status=401)

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

    # --- routes --------------------------------------------------------------------------------------
    async def health(self, _request: web.Request) -> web.Response:
        if self.dead is not None:
            return web.Response(status=503)
        return web.Response(status=200)

    async def version(self, _request: web.Request) -> web.Response:
        return _json({"version": self.profile.version_text})

    async def load(self, _request: web.Request) -> web.Response:
        core = self.runner.core
        return _json({"server_load": core.num_running + core.num_waiting})

    async def metrics_endpoint(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def models(self, request: web.Request) -> web.Response:
        if (denied := self._check_auth(request)) is not None:
            return denied
        data = [
            {
                "id": name,
                "object": "model",
                "created": self.created,
                "owned_by": "vllm",
                "root": self.config.model_path,
                "parent": None,
                "max_model_len": self.config.max_model_len,
                "permission": [
                    {
                        "id": f"modelperm-{hashlib.blake2b(f'{name}:{self.created}'.encode(), digest_size=8).hexdigest()}",
                        "object": "model_permission",
                        "created": self.created,
                        "allow_create_engine": False,
                        "allow_sampling": True,
                        "allow_logprobs": True,
                        "allow_search_indices": False,
                        "allow_view": True,
                        "allow_fine_tuning": False,
                        "organization": "*",
                        "group": None,
                        "is_blocking": False,
                    }
                ],
            }
            for i, name in enumerate(self.config.served_model_names)
        ]
        return _json({"object": "list", "data": data})

    async def crash_hook(self, request: web.Request) -> web.Response:
        reason = request.query.get("reason", "CUDA error: an illegal memory access was encountered")
        self.kill(reason)
        return _json({"crashed": True, "reason": reason})

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        if (denied := self._check_auth(request)) is not None:
            return denied
        try:
            body = json.loads(await request.read())
        except json.JSONDecodeError as exc:
            return self._error(json_error(self.profile, exc))
        except (ValueError, UnicodeDecodeError) as exc:
            return self._error(RequestError(f"The request body is not valid JSON: {exc}"))
        try:
            gen = parse_chat(body, self.profile) if chat else parse_completion(body, self.profile)
            model = self._check_model(gen)
            max_tokens = check_context(gen, self.config.max_model_len, self.profile)
        except RequestError as err:
            return self._error(err)
        if self.dead is not None:
            return self._error(
                RequestError(
                    f"EngineCore encountered an issue. See stack trace (above) for the root cause. ({self.dead})",
                    status=500,
                    err_type="InternalServerError",
                )
            )
        self._requests_seen += 1
        fail_after = self.config.fail_after_requests
        if fail_after is not None and self._requests_seen >= fail_after:
            self.kill(
                f"simulated fault injected on request {self._requests_seen} (--fail-after-requests {fail_after})"
            )
            return self._error(
                RequestError(
                    f"EngineCore encountered an issue. See stack trace (above) for the root cause. ({self.dead})",
                    status=500,
                    err_type="InternalServerError",
                )
            )
        seed = self.config.seed if gen.seed is None else gen.seed
        plan = plan_output(
            seed=seed,
            key=gen.prompt_key,
            max_tokens=max_tokens,
            min_tokens=gen.min_tokens,
            ignore_eos=gen.ignore_eos,
        )
        state = StreamState(plan, max_tokens)
        req = SimRequest(
            rid=next(self._ids), prompt_tokens=gen.prompt_tokens, output_tokens=plan.tokens, payload=state
        )
        state.req = req
        self._live.add(state)
        self.runner.submit(req)
        include_usage = gen.include_usage or (gen.stream and self.config.force_include_usage)
        continuous = gen.continuous_usage or (gen.stream and self.config.force_include_usage)
        rid = f"{'chatcmpl' if chat else 'cmpl'}-{hashlib.blake2b(f'{self.config.seed}:{req.rid}'.encode(), digest_size=16).hexdigest()}"
        if gen.stream:
            return await self._stream(request, state, gen, rid, model, chat, include_usage, continuous)
        return await self._whole(request, state, gen, rid, model, chat)

    async def _wait_done(self, state: StreamState) -> None:
        while not state.done and state.error is None:
            await state.wait()

    async def _whole(
        self,
        request: web.Request,
        state: StreamState,
        gen: GenerationRequest,
        rid: str,
        model: str,
        chat: bool,
    ) -> web.StreamResponse:
        try:
            await self._wait_done(state)
        except asyncio.CancelledError:
            self._abort(state)
            raise
        if state.error is not None:
            return self._error(
                RequestError(
                    f"EngineCore encountered an issue. See stack trace (above) for the root cause. ({state.error})",
                    status=500,
                    err_type="InternalServerError",
                )
            )
        req = state.req
        assert req is not None
        text = output_text(state.plan, 0, req.generated)
        usage: dict[str, Any] = {
            "prompt_tokens": gen.prompt_tokens,
            "total_tokens": gen.prompt_tokens + req.generated,
            "completion_tokens": req.generated,
            "prompt_tokens_details": None,
        }
        head: dict[str, Any] = {
            "id": rid,
            "object": "chat.completion" if chat else "text_completion",
            "created": int(time.time()),
            "model": model,
        }
        extras: dict[str, Any] = {}
        if self.v032:  # what vLLM 0.32 serializes (None when unused)
            usage["completion_tokens_details"] = None
            extras = {"kv_transfer_params": None, "ec_transfer_params": None, "metrics": None}
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if self.v032:
                message.update(refusal=None, annotations=None, audio=None, function_call=None, reasoning=None)
            else:
                message["tool_calls"] = []
            choice: dict[str, Any] = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": state.finish_reason,
                "stop_reason": None,
            }
            if self.v032:
                choice.update(token_ids=None, routed_experts=None)
                extras = {"prompt_logprobs": None, "prompt_token_ids": None, "prompt_text": None, **extras}
        else:
            choice = {
                "index": 0,
                "text": text,
                "logprobs": None,
                "finish_reason": state.finish_reason,
                "stop_reason": None,
            }
            if self.v032:
                choice["token_ids"] = None
            choice["prompt_logprobs"] = None
            if self.v032:
                choice.update(prompt_token_ids=None, routed_experts=None)
        body: dict[str, Any] = {**head, "choices": [choice]}
        if self.v032:
            body.update(service_tier=None, system_fingerprint=self.fingerprint)
        body["usage"] = usage
        return _json({**body, **extras})

    def _abort(self, state: StreamState) -> None:
        req = state.req
        if req is not None and not state.done:
            self.runner.abort(req)
            state.done = True
            state.finish_reason = "abort"
            self._live.discard(state)
            self.metrics.on_finished(
                "abort",
                (self.runner.virtual_now() - req.arrival) * self.wall_per_sim_s,
                req.generated,
                None,
                prompt_tokens=req.prompt_tokens,
                max_tokens=state.max_tokens,
                preemptions=req.preemptions,
            )

    async def _stream(
        self,
        request: web.Request,
        state: StreamState,
        gen: GenerationRequest,
        rid: str,
        model: str,
        chat: bool,
        include_usage: bool,
        continuous: bool,
    ) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers=SSE_HEADERS)
        created = int(time.time())
        head = json.dumps(
            {
                "id": rid,
                "object": "chat.completion.chunk" if chat else "text_completion",
                "created": created,
                "model": model,
            },
            separators=(",", ":"),
        )[:-1]
        v032 = self.v032
        # a token frame = prefix + token text + mid + (null + tail_mid | "reason" + tail_last) [+ usage]
        # [+ fingerprint] + "}": the choice's fields after finish_reason, as the profile's vLLM has them
        if chat:
            prefix = (f"data: {head}," + '"choices":[{"index":0,"delta":{"content":"').encode()
            mid = b'"},"logprobs":null,"finish_reason":'
            tail_mid = b',"token_ids":null}]' if v032 else b"}]"
            tail_last = b',"stop_reason":null,"token_ids":null}]' if v032 else b"}]"
        else:
            prefix = (f"data: {head}," + '"choices":[{"index":0,"text":"').encode()
            mid = b'","logprobs":null,"finish_reason":'
            tail_mid = tail_last = (
                b',"stop_reason":null,"prompt_token_ids":null,"token_ids":null}]'
                if v032
                else b',"stop_reason":null}]'
            )
        null_end = b"null" + tail_mid + b"}\n\n"
        # vLLM 0.32 stamps its fingerprint on the last frame: the usage frame, else the finishing one
        fingerprint = f',"system_fingerprint":"{self.fingerprint}"'.encode() if v032 else b""
        last_fingerprint = b"" if include_usage else fingerprint
        details = ',"completion_tokens_details":null' if v032 and chat else ""
        P = gen.prompt_tokens

        def usage_json(k: int, more: str = details) -> bytes:
            return f',"usage":{{"prompt_tokens":{P},"total_tokens":{P + k},"completion_tokens":{k}{more}}}'.encode()

        req = state.req
        assert req is not None
        plan = state.plan
        try:
            await resp.prepare(request)
            if chat:
                first: dict[str, Any] = {
                    "id": rid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": ""},
                            "logprobs": None,
                            "finish_reason": None,
                        }
                    ],
                }
                if continuous:
                    usage: dict[str, Any] = {"prompt_tokens": P, "total_tokens": P, "completion_tokens": 0}
                    if v032:
                        usage["completion_tokens_details"] = None
                    first["usage"] = usage
                if v032:
                    first.update(prompt_token_ids=None, prompt_text=None)
                await resp.write(b"data: " + json.dumps(first, separators=(",", ":")).encode() + b"\n\n")
            sent = 0
            while True:
                if req.generated == sent and not state.done and state.error is None:
                    await state.wait()
                if state.error is not None:
                    err = error_body(
                        self.profile,
                        RequestError(
                            f"EngineCore encountered an issue. See stack trace (above) for the root cause. ({state.error})",
                            status=500,
                            err_type="InternalServerError",
                        ),
                    )
                    await resp.write(b"data: " + json.dumps(err).encode() + b"\n\n" + DONE_FRAME)
                    return resp
                upto = req.generated
                frames = []
                for i in range(sent, upto):
                    tok = VOCAB_BYTES[token_index(plan, i)]
                    last = state.done and i == upto - 1
                    end = (
                        (b'"' + state.finish_reason.encode() + b'"' + tail_last)
                        if last
                        else (b"null" + tail_mid)
                    )
                    if continuous:
                        stamp = last_fingerprint if last else b""
                        frames.append(prefix + tok + mid + end + usage_json(i + 1) + stamp + b"}\n\n")
                    elif last:
                        frames.append(prefix + tok + mid + end + last_fingerprint + b"}\n\n")
                    else:
                        frames.append(prefix + tok + mid + null_end)
                sent = upto
                if state.done:
                    if include_usage:
                        frames.append(
                            (f"data: {head}," + '"choices":[]').encode()
                            + usage_json(sent, "")
                            + fingerprint
                            + b"}\n\n"
                        )
                    frames.append(DONE_FRAME)
                    await resp.write(b"".join(frames))
                    break
                if frames:
                    await resp.write(b"".join(frames))
            await resp.write_eof()
        except (ConnectionError, asyncio.CancelledError):
            self._abort(state)
            raise
        return resp
