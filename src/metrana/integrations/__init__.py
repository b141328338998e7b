"""Metrana inside the frameworks people train with. Each integration is a module of its own,
imported by name; it imports its framework when it is imported (``import metrana`` or
``import metrana.integrations`` imports none), and raises an ``ImportError`` saying which
package to install when the framework is missing:

========================================  ==================================================
module                                    what
========================================  ==================================================
``metrana.integrations.lightning``        ``MetranaLogger``, a ``lightning.pytorch`` logger
``metrana.integrations.pytorch_lightning``  the same, for the ``pytorch_lightning`` package
``metrana.integrations.transformers``     ``MetranaCallback``, a ``TrainerCallback``
``metrana.integrations.accelerate``       ``MetranaTracker``, a ``GeneralTracker``
``metrana.integrations.stable_baselines3``  ``MetranaOutputFormat`` (a ``KVWriter``),
                                          ``configure``
``metrana.integrations.gymnasium``        ``MetranaEpisodeLogger``, a wrapper logging
                                          episodes from environment workers
========================================  ==================================================

See ``docs/integrations.md``.
"""

__all__: list[str] = []
