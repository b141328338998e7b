import pkgutil

import metrana


def test_exported_names_are_exactly_the_public_api() -> None:
    assert set(metrana.__all__) == {
        "AsyncClient",
        "BackpressureStrategy",
        "Client",
        "ComparisonMetricSeries",
        "CloseStrategy",
        "ErrorStrategy",
        "LogLevel",
        "MetranaAlreadyInitializedError",
        "MetranaConfigError",
        "MetranaCorruptRingError",
        "MetranaDeliveryError",
        "MetranaDispatcherError",
        "MetranaError",
        "MetranaEventQueueFullError",
        "MetranaInvalidMetricError",
        "MetranaInvalidMetricTypeError",
        "MetranaMissingApiKeyError",
        "MetranaNotInitializedError",
        "MetranaRunExistsError",
        "MetranaTimeoutError",
        "MetricsApiAuthError",
        "MetricsApiError",
        "MetricsApiRequestError",
        "MetricsApiResponseError",
        "MetricsApiValidationError",
        "ResumeStrategy",
        "SessionStats",
        "StandardMetricScale",
        "Stats",
        "WriterStats",
        "__version__",
        "close",
        "flush",
        "get_last_step",
        "init",
        "log",
        "log_rl_environment_step",
        "log_rl_episode",
        "log_vector_env",
        "stats",
    }
    public = {name for name in dir(metrana) if not name.startswith("_")}
    subpackages = {module.name for module in pkgutil.iter_modules(metrana.__path__)}
    assert public - set(metrana.__all__) <= subpackages | {"annotations"}


def test_public_api_is_assembled_from_each_modules_all() -> None:
    """As httpx does: ``metrana.__all__`` is the union of its parts' ``__all__``, and each
    name resolves to the object its module defines."""
    from metrana import _enums, _errors, api, writer

    rest = set(metrana._REST_CLIENT_NAMES)
    assert rest <= set(api.__all__)
    parts = {"__version__", *_enums.__all__, *_errors.__all__, *writer.__all__, *rest}
    assert set(metrana.__all__) == parts
    assert len(metrana.__all__) == len(set(metrana.__all__))
    for name in metrana.__all__:
        obj = getattr(metrana, name)
        if name != "__version__" and name != "log":  # log is rebound while a writer is open
            assert obj.__module__.startswith("metrana."), name


def test_every_error_derives_from_metrana_error() -> None:
    for name in metrana.__all__:
        obj = getattr(metrana, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, metrana.MetranaError), name
    assert issubclass(metrana.MetranaInvalidMetricError, ValueError)
    assert issubclass(metrana.MetranaInvalidMetricTypeError, TypeError)
    assert issubclass(metrana.MetranaConfigError, ValueError)
    assert issubclass(metrana.MetranaTimeoutError, TimeoutError)


def test_the_rest_client_is_exported_but_loaded_on_first_use() -> None:
    from metrana import api

    assert metrana.Client is api.Client
    assert metrana.AsyncClient is api.AsyncClient
    assert metrana.ComparisonMetricSeries is api.ComparisonMetricSeries
    assert issubclass(metrana.MetricsApiRequestError, metrana.MetricsApiError)
    assert issubclass(metrana.MetricsApiError, metrana.MetranaError)
    assert issubclass(metrana.MetricsApiError, RuntimeError)  # as in the Syvain client
    assert issubclass(metrana.MetricsApiAuthError, metrana.MetricsApiError)  # as its README says
    assert issubclass(metrana.MetricsApiValidationError, ValueError)
    try:
        metrana.NoSuchThing  # noqa: B018
    except AttributeError as error:
        assert "no attribute 'NoSuchThing'" in str(error)
    else:
        raise AssertionError("unknown attributes must raise AttributeError")
