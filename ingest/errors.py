"""Typed errors for wenda. Every edge (CLI, HTTP) maps these in one table."""


class WendaError(Exception):
    """Base class of every error wenda raises on purpose."""


class CorpusError(WendaError):
    """A corpus path or article cannot be read."""


class EmptyCorpusError(CorpusError):
    """Nothing ingestible was found."""


class IndexNotFoundError(WendaError):
    """There is no index where one was expected."""


class IndexMismatchError(WendaError):
    """The index on disk was built with other settings (model, dimension)."""


class IndexBusyError(WendaError):
    """Another writer holds the index write lock.

    Args:
        retry_after: seconds after which a retry may succeed (from the
            writer's progress when it tells; HTTP sends it as Retry-After).
    """

    def __init__(self, message: str, *, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class BadQueryError(WendaError):
    """The question or its parameters are unusable (empty, too long, bad k)."""


class NotFoundError(WendaError):
    """An article or passage id is unknown."""


class AnswererUnavailableError(WendaError):
    """The answerer (or its model) cannot run here."""


class ModelUnavailableError(WendaError):
    """The embedding model cannot be loaded here."""
