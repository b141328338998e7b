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
        "stats",
    }
    public = {name for name in dir(metrana) if not name.startswith("_")}
    assert public - set(metrana.__all__) <= {
        "annotations",
        "cli",
        "dispatcher",
        "storage",
        "api",
        "server",
        "proto",
        "testing",
    }


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
    try:
        metrana.NoSuchThing  # noqa: B018
    except AttributeError as error:
        assert "no attribute 'NoSuchThing'" in str(error)
    else:
        raise AssertionError("unknown attributes must raise AttributeError")
