"""``generate --gpus``: the GPU list, the torchrun command the job restarts under, and the refusals.

The ranks' side (joining from torchrun's environment, sharing the forwards) runs for real in
tests/neural/test_parallel.py. A whole ``generate --gpus`` job is not run here: the command makes
480p or larger, where one step of even the tiny model takes about a minute on the CPU.
"""

from __future__ import annotations

import pytest
import torch
import typer
from torch.distributed.run import get_args_parser
from typer.testing import CliRunner

from infinitetalk.cli.main import app
from infinitetalk.errors import InvalidRequest
from infinitetalk.runtime import launch


@pytest.mark.parametrize(
    ("text", "ids"),
    [("0-7", [str(i) for i in range(8)]), ("0,1", ["0", "1"]), ("0-2, 6", ["0", "1", "2", "6"]), ("1,0,1", ["1", "0"])],
)
def test_gpu_lists(text: str, ids: list[str]) -> None:
    assert launch.parse_gpus(text) == ids


@pytest.mark.parametrize("text", ["", "a", "3-1", "0-", "-1", "0"])
def test_bad_gpu_lists_say_how_to_write_one(text: str) -> None:
    with pytest.raises(InvalidRequest, match="--gpus") as err:
        launch.parse_gpus(text)
    assert "0-7" in err.value.message or "one GPU" in err.value.message


def test_torchrun_runs_this_command_once_per_gpu_with_one_seed() -> None:
    argv = ["generate", "--demo", "--weights", "/w", "--gpus", "0-3", "-o", "out.mp4"]
    args = get_args_parser().parse_args(launch.torchrun_args(["0", "1", "2", "3"], argv, seed=1234))
    assert args.standalone and args.nproc_per_node == "4"
    assert args.module and args.training_script == "infinitetalk.cli"
    assert args.training_script_args == [*argv, "--seed", "1234"]
    # the appended seed wins over one given earlier (-1: random, which would differ between ranks)
    generate = typer.main.get_command(app).commands["generate"]
    ctx = generate.make_context("generate", ["-o", "x.mp4", "--seed", "-1", "--seed", "1234"])
    assert ctx.params["seed"] == 1234


def test_ranks_see_their_gpus_and_share_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    env = launch.rank_environment(["2", "3"])
    assert env["CUDA_VISIBLE_DEVICES"] == "2,3" and int(env["OMP_NUM_THREADS"]) >= 1
    assert env[launch.JOB_ENV] == "2,3"  # how a rank knows it is one (LOCAL_RANK alone may be another launcher's)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert "OMP_NUM_THREADS" not in launch.rank_environment(["2", "3"])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "--gpus runs the neural engine: give --weights DIR"),
        (["--weights", "w", "--gpus", "0,x"], "give GPU ids like 0-7 or 0,1"),
    ],
)
def test_generate_refuses_before_starting_anything(tmp_path, extra: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["generate", "--demo", "--gpus", "0,1", "-o", str(tmp_path / "o.mp4"), *extra])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has GPUs")
def test_generate_on_a_machine_without_gpus(tmp_path) -> None:
    result = CliRunner().invoke(app, ["generate", "--demo", "--weights", str(tmp_path), "--gpus", "0,1", "-o",
                                      str(tmp_path / "o.mp4")])
    assert result.exit_code == 2
    assert "this machine has no CUDA GPU; leave --gpus out" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gpus", "0,1", "--engine", "preview"], "--gpus-per-job shares each step of a job among GPUs: it runs the "
                                                  "neural engine; give --weights DIR"),
        (["--gpus", "0-2", "--weights", "w"], "--gpus-per-job 2 does not divide the 3 GPUs given; use 1, 3"),
        (["--gpus", "0,x", "--weights", "w"], "give GPU ids like 0-7 or 0,1, or all"),
    ],
)
def test_worker_groups_refuse_before_starting_anything(tmp_path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                                                       message: str) -> None:
    monkeypatch.setenv(launch.CPU_ENV, "1")  # the refusals come before any GPU is looked for
    result = CliRunner().invoke(app, ["worker", "--gpus-per-job", "2", "--broker", "redis://127.0.0.1:9/0",
                                      "--data-dir", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []  # no database, no process


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has GPUs")
def test_a_worker_group_on_a_machine_without_gpus(tmp_path) -> None:
    result = CliRunner().invoke(app, ["worker", "--gpus-per-job", "2", "--weights", str(tmp_path), "--broker",
                                      "redis://127.0.0.1:9/0", "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "--gpus-per-job: this machine has no CUDA GPU" in " ".join(result.output.split())
