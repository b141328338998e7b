"""Gymnasium: each episode's return and length, logged from the process that runs the
environment, such as a worker of an ``AsyncVectorEnv``.

    import gymnasium
    import metrana
    from metrana.integrations.gymnasium import MetranaEpisodeLogger

    metrana.init(workspace_name="me", project_name="cartpole", run_name="ppo")

    def make(index):
        return lambda: MetranaEpisodeLogger(gymnasium.make("CartPole-v1"), env_id=index)

    envs = gymnasium.vector.AsyncVectorEnv([make(i) for i in range(8)])
"""

from __future__ import annotations

from typing import Any

from .. import _enums
from .._errors import MetranaNotInitializedError
from ..writer import _run
from ._common import LazyRun, require

__all__ = ["MetranaEpisodeLogger"]

_Wrapper: Any = require("gymnasium", "gymnasium", "gymnasium").Wrapper
EPISODE = _enums.StandardMetricScale.EPISODE.value


class MetranaEpisodeLogger(_Wrapper):  # type: ignore[misc]
    """A ``gymnasium.Wrapper`` that logs each finished episode's return (the sum of its
    rewards) and length (its steps) from the process the environment runs in: the workers of
    an ``AsyncVectorEnv`` log directly, nothing is piped back to the trainer.

    ``MetranaEpisodeLogger(env, env_id=None, *, return_name="episode/return",
    length_name="episode/length", labels=None, **init_kwargs)``:

    - The two metrics go on the ``EPISODE`` scale, at each series' next step (the episode's
      number for that environment, continuing after a resumed run's), labelled
      ``environment_id=str(env_id)`` when ``env_id`` is given, plus ``labels``.
    - An episode ends when ``step()`` says terminated or truncated; a ``reset()`` in the middle
      of one starts a new one without logging it.
    - The process logs into its run: a forked worker into the one it inherits. A process with
      no run (a ``spawn`` or ``forkserver`` worker) opens one with ``metrana.init(**init_kwargs)``
      (the names and other arguments of ``init()``; ``close_strategy`` defaults to
      ``CompleteAll``): it joins the trainer's session when it has the same names and inherits
      the job's ``METRANA_ORCHESTRATION_ID`` (the trainer's ``init()`` exports it).
    """

    def __init__(
        self,
        env: Any,
        env_id: int | str | None = None,
        *,
        return_name: str = "episode/return",
        length_name: str = "episode/length",
        labels: dict[str, str] | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__(env)
        self._names = (return_name, length_name)
        self._labels = dict(labels or {})
        if env_id is not None:
            self._labels["environment_id"] = str(env_id)
        self._init_kwargs = init_kwargs
        self._run: LazyRun | None = None
        self._return = 0.0
        self._length = 0

    def reset(self, **kwargs: Any) -> Any:
        """Reset the environment; the next step starts a new episode."""
        self._return, self._length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        """Step the environment; log the episode when it ends."""
        observation, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        if terminated or truncated:
            self._log_episode()
            self._return, self._length = 0.0, 0
        return observation, reward, terminated, truncated, info

    def _log_episode(self) -> None:
        points = {self._names[0]: self._return, self._names[1]: self._length}
        try:
            _run.log(points, scale=EPISODE, labels=self._labels)
        except MetranaNotInitializedError:
            if self._run is None:
                self._run = LazyRun(**self._init_kwargs)
            self._run.open()
            _run.log(points, scale=EPISODE, labels=self._labels)
