"""A pool of CartPole worker processes, each logging from inside itself, and a learner.

Run it with::

    python examples/rl_env_pool.py --num-envs 4 --steps 256
    python examples/rl_env_pool.py --context spawn        # or forkserver

gymnasium's ``AsyncVectorEnv`` runs each environment in its own worker process (on Linux with
Python 3.11 its default ``context=None`` means ``fork``). The environment is wrapped in
:class:`MetranaEnvLogger`, a ``gymnasium.Wrapper`` that calls ``metrana.log()`` in ``step()`` and
``reset()``, so those calls run *in the worker process*:

- ``fork``: the worker inherits the learner's Metrana state; its first ``log()`` opens its own
  ring in the learner's session. No ``init()`` needed.
- ``spawn`` / ``forkserver``: the worker is a fresh interpreter, so the wrapper calls
  ``metrana.init()`` with the learner's arguments. It joins the learner's session because it
  inherits ``METRANA_ORCHESTRATION_ID``, which the learner's ``init()`` exported.

Every worker series carries the labels ``{"worker": INDEX, "pid": PID}``:

- ``reward`` (ENVIRONMENT_STEP scale, step = the worker's env step) at every ``step()``;
- ``episode_return`` and ``episode_length`` (EPISODE scale, step = the worker's episode) when an
  episode ends;
- ``initial_pole_angle`` (EPISODE scale) at every ``reset()``.

The learner trains a linear softmax policy with REINFORCE and logs ``train/loss``,
``train/entropy`` and ``train/mean_reward`` once per update (ML_STEP scale, no labels).

With ``--summary FILE`` it writes what the learner saw (steps and episodes per worker, their
returns, the worker pids) as JSON, so a test can check the stored points against it.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode

import metrana


class MetranaEnvLogger(gym.Wrapper):
    """Logs per-step and per-episode metrics from the process the environment runs in."""

    def __init__(
        self, env: gym.Env, worker: int, learner_pid: int, init_kwargs: dict[str, Any] | None
    ) -> None:
        super().__init__(env)
        # AsyncVectorEnv also builds one throwaway copy of the first environment in the learner,
        # to read the spaces, and closes it at once: that copy must leave the learner's Metrana
        # writer alone (no init(), no close()).
        self.in_worker = os.getpid() != learner_pid
        if self.in_worker and init_kwargs is not None:
            # A spawned (or forkserver) worker starts with no Metrana state: join the session.
            metrana.init(**init_kwargs)
        self.labels = {"worker": str(worker), "pid": str(os.getpid())}
        self.env_step = 0
        self.episode = 0  # index of the episode in progress
        self.resets = 0
        self.episode_return = 0.0
        self.episode_length = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        observation, info = self.env.reset(**kwargs)
        self.episode_return = 0.0
        self.episode_length = 0
        metrana.log(
            "initial_pole_angle",
            float(observation[2]),
            scale="EPISODE",
            step=self.resets,
            labels=self.labels,
        )
        self.resets += 1
        return observation, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        observation, reward, terminated, truncated, info = self.env.step(action)
        metrana.log(
            "reward",
            float(reward),
            scale="ENVIRONMENT_STEP",
            step=self.env_step,
            labels=self.labels,
        )
        self.env_step += 1
        self.episode_return += float(reward)
        self.episode_length += 1
        if terminated or truncated:
            metrana.log(
                "episode_return",
                self.episode_return,
                scale="EPISODE",
                step=self.episode,
                labels=self.labels,
            )
            metrana.log(
                "episode_length",
                self.episode_length,
                scale="EPISODE",
                step=self.episode,
                labels=self.labels,
            )
            self.episode += 1
        return observation, float(reward), terminated, truncated, info

    def close(self) -> None:
        super().close()
        if not self.in_worker:
            return
        try:
            # Multiprocessing workers exit without atexit handlers: close explicitly so that
            # this worker's points are stored (CompleteAll) and it counts as closed, not dead.
            metrana.close()
        except metrana.MetranaNotInitializedError:
            pass  # this worker never logged


def make_env(
    worker: int, learner_pid: int, init_kwargs: dict[str, Any] | None
) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        return MetranaEnvLogger(gym.make("CartPole-v1"), worker, learner_pid, init_kwargs)

    return thunk


class LinearPolicy:
    """pi(a|s) = softmax(s @ W + b), trained with REINFORCE on normalised returns."""

    def __init__(self, obs_dim: int, num_actions: int, rng: np.random.Generator) -> None:
        self.weights = 0.01 * rng.standard_normal((obs_dim, num_actions))
        self.bias = np.zeros(num_actions)
        self.rng = rng

    def probabilities(self, observations: np.ndarray) -> np.ndarray:
        logits = observations @ self.weights + self.bias
        logits -= logits.max(axis=-1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=-1, keepdims=True)

    def act(self, observations: np.ndarray) -> np.ndarray:
        probs = self.probabilities(observations)
        return (self.rng.random((len(probs), 1)) > probs.cumsum(axis=1)).sum(axis=1)

    def update(
        self,
        observations: np.ndarray,  # (T, N, obs_dim)
        actions: np.ndarray,  # (T, N)
        rewards: np.ndarray,  # (T, N)
        dones: np.ndarray,  # (T, N)
        lr: float,
        gamma: float = 0.99,
    ) -> tuple[float, float]:
        returns = np.zeros_like(rewards)
        running = np.zeros(rewards.shape[1])
        for t in reversed(range(len(rewards))):
            running = rewards[t] + gamma * running * (1.0 - dones[t])
            returns[t] = running
        advantages = (returns - returns.mean()) / (returns.std() + 1e-8)
        obs = observations.reshape(-1, observations.shape[-1])
        probs = self.probabilities(obs)
        taken = np.eye(probs.shape[1])[actions.reshape(-1)]
        adv = advantages.reshape(-1, 1)
        log_probs = np.log(probs + 1e-12)
        loss = float(-(adv[:, 0] * (log_probs * taken).sum(axis=1)).mean())
        entropy = float(-(probs * log_probs).sum(axis=1).mean())
        grad_logits = (probs - taken) * adv / len(obs)  # d loss / d logits
        self.weights -= lr * obs.T @ grad_logits
        self.bias -= lr * grad_logits.sum(axis=0)
        return loss, entropy


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-envs", type=int, default=4, help="worker processes")
    parser.add_argument("--steps", type=int, default=256, help="vector steps (per worker)")
    parser.add_argument("--rollout", type=int, default=32, help="vector steps per update")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument(
        "--context",
        choices=("default", "fork", "spawn", "forkserver"),
        default="default",
        help="multiprocessing start method of the workers (default: the platform's)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workspace", default="examples")
    parser.add_argument("--project", default="rl")
    parser.add_argument("--run-name", default="env-pool-demo")
    parser.add_argument("--summary", default=None, help="write what the learner saw as JSON")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    import multiprocessing

    context = None if args.context == "default" else args.context
    start_method = context or multiprocessing.get_start_method()
    init_kwargs: dict[str, Any] = {
        "workspace_name": args.workspace,
        "project_name": args.project,
        "run_name": args.run_name,
        "close_strategy": "CompleteAll",
    }
    # Before the pool starts: forked workers inherit this state, spawned ones the exported
    # METRANA_ORCHESTRATION_ID.
    metrana.init(**init_kwargs)
    worker_init = None if start_method == "fork" else init_kwargs

    envs = AsyncVectorEnv(
        [make_env(i, os.getpid(), worker_init) for i in range(args.num_envs)],
        context=context,
        # Every vector step is exactly one env.step() in every worker; an episode that ends is
        # reset within the same step.
        autoreset_mode=AutoresetMode.SAME_STEP,
    )
    worker_pids = [process.pid for process in envs.processes]
    rng = np.random.default_rng(args.seed)
    policy = LinearPolicy(envs.single_observation_space.shape[0], 2, rng)

    observations, _ = envs.reset(seed=args.seed)
    episode_returns: list[list[float]] = [[] for _ in range(args.num_envs)]
    running_returns = np.zeros(args.num_envs)
    buffer: dict[str, list[np.ndarray]] = {"obs": [], "act": [], "rew": [], "done": []}
    update = 0
    for vector_step in range(args.steps):
        actions = policy.act(observations)
        next_observations, rewards, terminated, truncated, _ = envs.step(actions)
        done = terminated | truncated
        running_returns += rewards
        for i in np.flatnonzero(done):
            episode_returns[i].append(float(running_returns[i]))
            running_returns[i] = 0.0
        buffer["obs"].append(observations)
        buffer["act"].append(actions)
        buffer["rew"].append(rewards)
        buffer["done"].append(done.astype(np.float64))
        observations = next_observations
        if (vector_step + 1) % args.rollout == 0 or vector_step + 1 == args.steps:
            rewards_batch = np.stack(buffer["rew"])
            loss, entropy = policy.update(
                np.stack(buffer["obs"]),
                np.stack(buffer["act"]),
                rewards_batch,
                np.stack(buffer["done"]),
                args.lr,
            )
            metrana.log("train/loss", loss, step=update)
            metrana.log("train/entropy", entropy, step=update)
            metrana.log("train/mean_reward", float(rewards_batch.mean()), step=update)
            update += 1
            buffer = {key: [] for key in buffer}

    # Every worker has logged by now: its ring sits in the learner's session beside the
    # learner's own.
    session_writer_pids = sorted({writer.pid for writer in metrana.stats().session.writers})
    envs.close()  # each worker's wrapper closes its Metrana writer
    metrana.close()

    summary = {
        "start_method": start_method,
        "learner_pid": os.getpid(),
        "worker_pids": worker_pids,
        "session_writer_pids": session_writer_pids,
        "steps_per_worker": args.steps,
        "updates": update,
        "episode_returns": episode_returns,
    }
    finished = sum(len(r) for r in episode_returns)
    print(
        f"{args.num_envs} workers ({start_method}), {args.steps} steps each, "
        f"{finished} episodes, {update} updates"
    )
    if args.summary:
        with open(args.summary, "w") as out:
            json.dump(summary, out)


if __name__ == "__main__":
    main()
