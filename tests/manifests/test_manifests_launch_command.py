"""parse_container(): a container's command read as the kubelet and the shell would read it."""

from __future__ import annotations

import pytest

from manifests.launch_command import expand_kubelet, expand_kubelet_vars, parse_container

SCRIPT = "/vllm-workspace/examples/online_serving/multi-node-serving.sh"
LWS_ENV = {"LWS_GROUP_SIZE": "2", "LWS_LEADER_ADDRESS": "vllm-0.vllm.default"}


def _shell(text: str) -> dict[str, list[str]]:
    return {"command": ["sh", "-c", text]}


@pytest.mark.parametrize(
    ("text", "expected", "missing"),
    [
        ("$(A)-$(B)", "1-$(B)", ["B"]),
        ("$$(A)", "$(A)", []),
        ("cost $$5", "cost $5", []),
        ("$A and $(", "$A and $(", []),
        ("$(A)$(A)", "11", []),
    ],
)
def test_variables_expand_like_the_kubelet(text: str, expected: str, missing: list[str]) -> None:
    assert expand_kubelet(text, {"A": "1"}) == (expected, missing)
    assert expand_kubelet_vars(text, {"A": "1"}) == expected


def test_without_an_env_the_command_is_read_as_written() -> None:
    launch = parse_container(
        _shell(f"bash {SCRIPT} leader --ray_cluster_size=$(LWS_GROUP_SIZE); vllm serve m")
    )
    assert launch.script is not None and launch.script.args == {"ray-cluster-size": "$(LWS_GROUP_SIZE)"}
    assert launch.script.ray_cluster_size is None and launch.unexpanded == ()


def test_with_an_env_command_and_args_are_expanded_and_the_undefined_names_listed() -> None:
    launch = parse_container(
        {
            "command": [
                "sh",
                "-c",
                f"bash {SCRIPT} leader --ray_cluster_size=$(LWS_GROUP_SIZE); vllm serve m",
            ],
            "args": ["--port=$(PORT)", "$(PORT)", "$(LWS_GROUP_SIZE)"],
        },
        env=LWS_ENV,
    )
    assert launch.script is not None and launch.script.ray_cluster_size == 2
    assert launch.unexpanded == ("PORT",)


def test_the_script_call_reads_the_ray_settings_the_script_takes() -> None:
    worker = parse_container(_shell(f"bash {SCRIPT} worker --ray_address=$(LWS_LEADER_ADDRESS)"), env=LWS_ENV)
    assert worker.script is not None and worker.script.role == "worker"
    assert (worker.script.ray_address, worker.script.ray_port) == ("vllm-0.vllm.default", 6379)
    custom = parse_container(_shell(f"{SCRIPT} worker --ray_address=a --ray_port=6380")).script
    assert custom is not None and custom.ray_port == 6380 and custom.ray_cluster_size is None


@pytest.mark.parametrize(
    ("text", "then"),
    [
        (f"bash {SCRIPT} leader --ray_cluster_size=2; vllm serve m", ";"),
        (f"bash {SCRIPT} leader --ray_cluster_size=2 && vllm serve m", "&&"),
        (f"bash {SCRIPT} leader --ray_cluster_size=2 &&\n  vllm serve m", "&&"),
        (f"bash {SCRIPT} leader --ray_cluster_size=2;\nvllm serve m", ";"),
        (f"bash {SCRIPT} leader --ray_cluster_size=2\nvllm serve m", ";"),
        (f"bash {SCRIPT} leader --ray_cluster_size=2 || vllm serve m", "||"),
    ],
)
def test_the_operator_after_the_script_is_kept(text: str, then: str) -> None:
    launch = parse_container(_shell(text))
    assert launch.then == then
    assert launch.script is not None and launch.script.args == {"ray-cluster-size": "2"}
    assert launch.serve is not None and launch.serve.model == "m"


def test_a_multi_line_script_with_continued_lines_and_other_statements() -> None:
    launch = parse_container(
        _shell(
            "set -e\n"
            f"bash {SCRIPT} leader --ray_cluster_size=2\n"
            "vllm serve m \\\n  --port 8080 \\\n  --tensor-parallel-size 8\n"
        )
    )
    assert launch.other == ("set -e",)
    assert launch.serve is not None and launch.serve.args == {"port": "8080", "tensor-parallel-size": "8"}
    assert parse_container(_shell("vllm serve m")).then is None


@pytest.mark.parametrize(
    "command",
    [
        ["bash", "-ec", "vllm serve m --port 1"],
        ["/usr/bin/env", "bash", "-c", "vllm serve m --port 1"],
        ["/usr/local/bin/bash", "--norc", "-c", "vllm serve m --port 1"],
    ],
)
def test_shell_spellings_are_recognised(command: list[str]) -> None:
    launch = parse_container({"command": command})
    assert launch.shell == "vllm serve m --port 1"
    assert launch.serve is not None and launch.serve.value("port") == "1"


def test_an_exec_form_command_has_no_shell_operators() -> None:
    launch = parse_container({"command": ["vllm", "serve", "m", "--served-model-name", "a;b"]})
    assert launch.serve is not None and launch.serve.value("served-model-name") == "a;b"
    assert launch.shell is None and launch.other == ()


def test_unbalanced_quotes_are_reported_not_raised() -> None:
    launch = parse_container(_shell("vllm serve 'm"))
    assert launch.serve is None and launch.shell == "vllm serve 'm"
    assert launch.shell_error == "No closing quotation"


def test_flag_argv_replays_the_words_as_written_without_the_model_and_named_flags() -> None:
    serve = parse_container(
        _shell("vllm serve m --host 0.0.0.0 --port=8080 --served-model-name a b --pipeline_parallel_size 2")
    ).serve
    assert (
        serve is not None
        and serve.int_value("pipeline-parallel-size") == 2
        and serve.int_value("dtype") is None
    )
    assert serve.flag_argv(without=("host", "port")) == [
        "--served-model-name",
        "a",
        "b",
        "--pipeline_parallel_size",
        "2",
    ]
    api = parse_container(
        {"command": ["python3", "-m", "vllm.entrypoints.openai.api_server", "--model", "m", "--port", "1"]}
    ).serve
    assert api is not None and api.model == "m"
    assert api.flag_argv(without=("model",)) == ["--port", "1"]
    entry = parse_container({"args": ["--disable-custom-all-reduce", "m", "-tp", "8"]}).serve
    assert entry is not None and entry.model == "m" and entry.int_value("tensor-parallel-size") == 8
    assert entry.flag_argv() == ["--disable-custom-all-reduce", "-tp", "8"]
