"""``metrana.integrations.stable_baselines3`` and ``.gymnasium``: a real PPO run, and the
workers of a real ``AsyncVectorEnv`` logging their episodes from inside their processes, read
back through the REST client: exactly the keys, steps and values SB3 dumped, exactly the
episodes the environments played. They need the ``integrations`` extra."""

from __future__ import annotations

import os
from typing import Any

import pytest
from conftest import init_over_http, need, server_env, wait_for_dispatchers_to_exit
from integrations_readback import reported_points, run_metadata, run_status, stored_points

import metrana
from metrana.testing import RunningServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")


@pytest.mark.slow
def test_the_sb3_output_format_stores_every_dump_at_the_models_timesteps(
    live_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    need("stable_baselines3", "integrations")
    from stable_baselines3 import PPO
    from stable_baselines3.common.logger import HParam, KVWriter

    from metrana.integrations.stable_baselines3 import MetranaOutputFormat, configure

    for name, value in server_env(live_server).items():
        monkeypatch.setenv(name, value)
    dumps: list[tuple[dict[str, Any], int]] = []

    class Recorder(KVWriter):  # type: ignore[misc]
        def write(self, key_values: Any, key_excluded: Any, step: int = 0) -> None:
            kept = {k: v for k, v in key_values.items() if "metrana" not in key_excluded[k]}
            dumps.append((kept, step))

        def close(self) -> None:
            pass

    logger = configure(
        None,
        ["metrana"],
        workspace_name="default",
        project_name="proj",
        run_name="ppo",
        config={"algo": "ppo"},
    )
    assert [type(f) for f in logger.output_formats] == [MetranaOutputFormat]
    logger.output_formats.append(Recorder())
    model = PPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=32, n_epochs=1, seed=0)
    model.set_logger(logger)
    logger.record("hparams", HParam({"gamma": 0.99}, {"rollout/ep_len_mean": 0}))
    logger.record("debug/secret", 1.0, exclude="metrana")
    model.learn(total_timesteps=192)
    logger.close()

    assert [step for _, step in dumps] == [64, 128, 192]
    wait_for_dispatchers_to_exit()
    stored = stored_points(live_server, "ppo")
    assert stored == reported_points(dumps, scale="ENVIRONMENT_STEP")
    names = {name for name, _, _ in stored}
    assert {"rollout/ep_rew_mean", "time/fps", "train/loss", "train/entropy_loss"} <= names
    assert "debug/secret" not in names
    assert run_metadata(live_server, "ppo") == {"algo": "ppo", "gamma": 0.99}
    assert run_status(live_server, "ppo") == "done"


def _play(envs: Any, steps: int) -> tuple[list[list[float]], list[list[int]]]:
    """Step ``envs`` with seeded random actions; each environment's finished episodes'
    returns and lengths, as the trainer sees them (autoreset steps left out)."""
    import numpy

    count = envs.num_envs
    returns: list[list[float]] = [[] for _ in range(count)]
    lengths: list[list[int]] = [[] for _ in range(count)]
    running, length = [0.0] * count, [0] * count
    resetting = numpy.zeros(count, dtype=bool)
    envs.reset(seed=0)
    envs.action_space.seed(0)
    for _ in range(steps):
        _, rewards, terminated, truncated, _ = envs.step(envs.action_space.sample())
        for i in range(count):
            if resetting[i]:  # this step was the worker's reset()
                continue
            running[i] += float(rewards[i])
            length[i] += 1
            if terminated[i] or truncated[i]:
                returns[i].append(running[i])
                lengths[i].append(length[i])
                running[i], length[i] = 0.0, 0
        resetting = terminated | truncated
    return returns, lengths


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_async_env_workers_log_their_episodes_from_their_processes(
    context: str, live_server: RunningServer
) -> None:
    need("gymnasium", "integrations")
    import gymnasium

    from metrana.integrations.gymnasium import MetranaEpisodeLogger

    run = f"episodes-{context}"
    init_over_http(live_server, run, config={"env": "CartPole-v1"}, close_strategy="CompleteAll")
    # A spawned worker has no run: it opens one with these (and the inherited job id).
    init_kwargs = {**server_env_kwargs(live_server), "run_name": run}

    def make(index: int) -> Any:
        return lambda: MetranaEpisodeLogger(
            gymnasium.make("CartPole-v1"), env_id=index, **init_kwargs
        )

    envs = gymnasium.vector.AsyncVectorEnv([make(i) for i in range(3)], context=context)
    returns, lengths = _play(envs, 300)
    worker_pids = {process.pid for process in envs.processes}
    envs.close()
    # the trainer logged nothing: every point came from a worker's own ring
    assert metrana.stats().process.logged == 0
    assert os.getpid() not in worker_pids
    metrana.close()
    wait_for_dispatchers_to_exit()

    stored = stored_points(live_server, run)
    expected = {}
    for i in range(3):
        labels = (("environment_id", str(i)),)
        assert len(returns[i]) >= 5  # CartPole's random episodes last ~20 steps
        expected[("episode/return", "EPISODE", labels)] = list(enumerate(returns[i]))
        expected[("episode/length", "EPISODE", labels)] = list(enumerate(lengths[i]))
    assert stored == expected
    assert run_metadata(live_server, run) == {"env": "CartPole-v1"}
    assert run_status(live_server, run) == "done"


def server_env_kwargs(server: RunningServer) -> dict[str, str]:
    """The ``metrana.init()`` arguments of a run in the server's ``default`` workspace."""
    return {
        "api_key": server.api_key,
        "ingestion_url": server.url,
        "workspace_name": "default",
        "project_name": "proj",
    }
