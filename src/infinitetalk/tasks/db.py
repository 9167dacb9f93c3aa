"""Database engine, sessions and migrations. SQLite file by default; any SQLAlchemy URL (PostgreSQL) works."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

from infinitetalk.config import Settings

MIGRATIONS = Path(__file__).with_name("migrations")

SessionFactory = sessionmaker[Session]

#: Seconds a PostgreSQL connect may take before it counts as failed.
CONNECT_TIMEOUT_S = 10

#: Key of the PostgreSQL advisory lock that one migration at a time holds: any fixed number, the same in every
#: process (here the bytes of "infinite", halved to stay a positive bigint).
MIGRATION_LOCK = int.from_bytes(b"infinite", "big") >> 1


def database_url(settings: Settings) -> str:
    if settings.database_url:
        return settings.database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(settings.data_dir / 'infinitetalk.db').resolve()}"


def make_database(url: str, *, busy_timeout_s: float = 5.0) -> Engine:
    if not url.startswith("sqlite"):
        # a server that drops our packets (a firewall, a host that is down) fails a connect within seconds
        # instead of the system's TCP timeout (minutes), so start-up waits and /readyz answer
        timeout = {"connect_timeout": CONNECT_TIMEOUT_S} if url.startswith("postgresql") else {}
        return create_engine(url, pool_pre_ping=True, connect_args=timeout)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_timeout_s})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API types
        # WAL lets readers (status polls) run while a writer holds the lock; busy_timeout makes
        # writers queue instead of failing with "database is locked" under concurrent submits.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def session_factory(engine: Engine) -> SessionFactory:
    return sessionmaker(engine, expire_on_commit=False)


def _alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (what start-up and `keys` commands run first)."""
    config = _alembic_config()
    with engine.begin() as connection:
        # Processes that start together on a fresh store (a fleet's API and workers; serve beside `keys create`)
        # would each create the same tables, and all but one die. One migrates at a time, holding a lock until
        # its commit; the next then finds the schema at head and does nothing.
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        elif connection.dialect.name == "sqlite":
            # the write lock before alembic reads its version (Python's sqlite3 would begin only at the first
            # INSERT, and runs DDL outside any transaction); the others wait in busy_timeout
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def at_head(engine: Engine) -> bool:
    """Whether the database's schema is the newest revision (for /readyz)."""
    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision() == head


def open_database(settings: Settings) -> tuple[Engine, SessionFactory]:
    """Engine + session factory for ``settings``, migrated to head."""
    engine = make_database(database_url(settings), busy_timeout_s=settings.database_busy_timeout_s)
    try:
        migrate(engine)
    except BaseException:  # a database that does not answer (yet): leave no pool behind for the next try
        engine.dispose()
        raise
    return engine, session_factory(engine)
