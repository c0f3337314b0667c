"""One exception tree. The CLI turns these into one line and exit code 2."""


class AlgoTradeError(Exception):
    """Base of every error a user can cause and fix."""


class DataError(AlgoTradeError):
    """Input data is malformed, empty or inconsistent."""


class ConfigError(AlgoTradeError):
    """A setting, option or parameter is invalid."""


class StoreError(AlgoTradeError):
    """The store cannot be opened, read or written."""


class ExchangeError(AlgoTradeError):
    """An exchange endpoint is unreachable or answered something unusable."""


class DamagedFileError(StoreError):
    """A stored file cannot be read (truncated, garbage, wrong schema)."""
