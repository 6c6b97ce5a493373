"""Reading a pod's container command and env the way the kubelet and bash would (the seed manifest's)."""

from __future__ import annotations

import pytest

from testbed.engine.cli import parse_args
from testbed.engine.launch import expand_vars, parse_launch

LEADER_CMD = [
    "sh",
    "-c",
    "bash /vllm-workspace/examples/online_serving/multi-node-serving.sh leader --ray_cluster_size=$(LWS_GROUP_SIZE); \n"
    "                    vllm serve meta-llama/Meta-Llama-3.1-405B-Instruct --port 8080 --tensor-parallel-size 8 --pipeline_parallel_size 2",
]
WORKER_CMD = [
    "sh",
    "-c",
    "bash /vllm-workspace/examples/online_serving/multi-node-serving.sh worker --ray_address=$(LWS_LEADER_ADDRESS)",
]
ENV = {
    "LWS_LEADER_ADDRESS": "vllm-0.vllm.default",
    "LWS_GROUP_SIZE": "2",
    "LWS_WORKER_INDEX": "0",
    "HF_TOKEN": "<your-hf-token>",
}


def test_the_seed_leader_command_reads_as_script_then_vllm_serve() -> None:
    spec = parse_launch(LEADER_CMD, env=ENV, image="docker.io/vllm/vllm-openai:latest")
    assert spec.role == "leader"
    assert (
        spec.script is not None
        and spec.script.path == "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
    )
    assert spec.script.role == "leader" and spec.script.ray_cluster_size == 2
    assert spec.then == ";"
    assert spec.serve is not None and spec.serve.model == "meta-llama/Meta-Llama-3.1-405B-Instruct"
    assert (spec.tensor_parallel_size, spec.pipeline_parallel_size, spec.port) == (8, 2, 8080)
    assert spec.problems == ()


def test_the_seed_worker_command_reads_as_a_ray_worker() -> None:
    spec = parse_launch(WORKER_CMD, env={**ENV, "LWS_WORKER_INDEX": "1"})
    assert spec.role == "worker" and spec.serve is None
    assert (
        spec.script is not None
        and spec.script.ray_address == "vllm-0.vllm.default"
        and spec.script.ray_port == 6379
    )


def test_a_missing_env_var_is_left_as_written_and_reported() -> None:
    spec = parse_launch(LEADER_CMD, env={})
    assert spec.script is not None and spec.script.ray_cluster_size is None
    assert any("LWS_GROUP_SIZE" in p for p in spec.problems)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("$(A)-$(B)", "1-$(B)"), ("$$(A)", "$(A)"), ("cost $$5", "cost $5"), ("$A", "$A"), ("$(A)$(A)", "11")],
)
def test_kubelet_variable_expansion(text: str, expected: str) -> None:
    assert expand_vars(text, {"A": "1"})[0] == expected


def test_entrypoint_form_and_api_server_module_form() -> None:
    spec = parse_launch(None, ["meta-llama/Llama-3.1-8B-Instruct", "--port", "8000"])
    assert (
        spec.role == "leader"
        and spec.serve is not None
        and spec.serve.model == "meta-llama/Llama-3.1-8B-Instruct"
    )
    old = parse_launch(
        [
            "sh",
            "-c",
            "python3 -m vllm.entrypoints.openai.api_server --port 8080 --model meta-llama/Llama-3.1-405B-Instruct --tensor-parallel-size 8 --pipeline_parallel_size 2",
        ]
    )
    assert (
        old.serve is not None
        and old.serve.model == "meta-llama/Llama-3.1-405B-Instruct"
        and old.pipeline_parallel_size == 2
    )


def test_and_and_joiner_is_kept() -> None:
    spec = parse_launch(
        ["bash", "-c", "bash /x/multi-node-serving.sh leader --ray_cluster_size=2 && vllm serve m --port 1"]
    )
    assert spec.then == "&&"


def test_headless_vllm_serve_is_a_worker() -> None:
    spec = parse_launch(
        ["sh", "-c", "vllm serve m --tensor-parallel-size 8 --nnodes 2 --node-rank 1 --headless"]
    )
    assert spec.role == "worker"


def test_engine_argv_replays_vllm_serve_on_loopback_and_parses() -> None:
    spec = parse_launch(LEADER_CMD, env=ENV, image="vllm/vllm-openai:v0.10.1")
    argv = spec.engine_argv(
        port=31234,
        node_ips=["10.244.1.5", "10.244.2.7"],
        log_file="/tmp/l.log",
        worker_log_files=["/tmp/w1.log"],
        time_scale=0.01,
        startup_seconds=5,
    )
    assert argv[1:4] == ["-m", "testbed.engine", "meta-llama/Meta-Llama-3.1-405B-Instruct"]
    opts = parse_args(argv[3:])
    assert opts.port == 31234 and opts.advertised_port == 8080 and opts.host == "127.0.0.1"
    assert (opts.tensor_parallel_size, opts.pipeline_parallel_size) == (8, 2)
    assert opts.image == "vllm/vllm-openai:v0.10.1" and opts.ray_cluster_size == 2
    assert opts.launch_script == "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
    assert opts.node_ips == ("10.244.1.5", "10.244.2.7") and len(opts.worker_log_files) == 1
    assert opts.time_scale == 0.01 and opts.startup_seconds == 5


def test_engine_argv_refuses_a_worker_spec() -> None:
    with pytest.raises(ValueError, match="only a leader spec"):
        parse_launch(WORKER_CMD, env=ENV).engine_argv(port=1)


def test_a_worker_whose_script_is_not_in_the_image_exits_127() -> None:
    from testbed.engine.launch import worker_script_failure
    from testbed.engine.profiles import Profile, version_from_image

    spec = parse_launch(WORKER_CMD, env=ENV)
    latest = Profile.for_version(version_from_image("vllm/vllm-openai:latest"))
    assert worker_script_failure(spec, latest) == (
        "bash: /vllm-workspace/examples/online_serving/multi-node-serving.sh: No such file or directory",
        127,
    )
    assert worker_script_failure(spec, Profile.for_version((0, 10, 1))) is None
    unexpanded = parse_launch(WORKER_CMD, env={})
    assert unexpanded.script is not None and unexpanded.script.ray_address == "$(LWS_LEADER_ADDRESS)"


def test_engine_argv_binds_loopback_and_keeps_what_the_parser_reads_verbatim() -> None:
    spec = parse_launch(
        [
            "bash",
            "-c",
            "bash /x/multi-node-serving.sh leader --ray_cluster_size=$(LWS_GROUP_SIZE) &&\n"
            "vllm serve m --host 0.0.0.0 --port=$(PORT) --served-model-name a b -tp 8",
        ],
        env={"LWS_GROUP_SIZE": "2", "PORT": "9000"},
    )
    assert spec.then == "&&" and spec.port == 9000 and spec.tensor_parallel_size == 8
    argv = spec.engine_argv(port=31234)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and "0.0.0.0" not in argv
    opts = parse_args(argv[3:])
    assert (opts.port, opts.advertised_port, opts.ray_cluster_size) == (31234, 9000, 2)
    assert opts.served_model_names == ("a", "b") and opts.script_then == "on-success"


def test_a_command_that_cannot_be_split_is_a_problem_not_an_error() -> None:
    spec = parse_launch(["sh", "-c", "vllm serve 'm"])
    assert spec.role == "unknown" and spec.serve is None
    assert spec.problems == ('cannot split "vllm serve \'m" as a shell command: No closing quotation',)


def test_unrecognised_statements_are_kept_as_other() -> None:
    spec = parse_launch(["sh", "-c", "ulimit -n 65536\nvllm serve m"])
    assert spec.role == "leader" and spec.other == ("ulimit -n 65536",)


def test_a_headless_entrypoint_form_is_a_worker() -> None:
    spec = parse_launch(None, ["m", "--headless", "--node-rank", "1"])
    assert spec.role == "worker"
