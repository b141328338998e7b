import metrana


def test_exported_names_are_exactly_the_public_api() -> None:
    assert set(metrana.__all__) == {
        "BackpressureStrategy",
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
        "ResumeStrategy",
        "SessionStats",
        "StandardMetricScale",
        "Stats",
        "WriterStats",
        "__version__",
        "close",
        "flush",
        "init",
        "log",
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
