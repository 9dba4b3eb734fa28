"""``cte-migrate``: bring the database schema to the newest revision with Alembic."""

from __future__ import annotations

import argparse
from pathlib import Path

from alembic import command
from alembic.config import Config

from cte_common.settings import CommonSettings

__all__ = [
    "alembic_config",
    "main",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # Alembic runs through SQLAlchemy; the asyncpg dialect keeps us on one PostgreSQL driver.
    cfg.set_main_option("sqlalchemy.url", database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    return cfg


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def main() -> None:
    parser = argparse.ArgumentParser(description="Apply database migrations.")
    parser.add_argument("revision", nargs="?", default="head")
    args = parser.parse_args()
    upgrade(CommonSettings().database_url, args.revision)
