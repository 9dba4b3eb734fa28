"""The component tier: the API in process and the consumers' handlers called by the test.

Each module gets a database and topic namespace of its own (the session's ``env`` and ``db`` are
overridden per module): the integration tier's processes, started later in the same run, never see
what these tests leave, and a module's assertions about the read model or the share topic see only
its own writes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from cte_common.db import Pool
from tests.conftest import BOOTSTRAP_ID, BOOTSTRAP_SECRET, JWT_SECRET, SECRETS_KEY, Env, open_env
from tests.support.component import System, running_system
from tests.support.stack import Stack


@pytest.fixture(scope="module")
async def env(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Env]:
    async with open_env(stack, tmp_path_factory.mktemp("logs")) as e:
        yield e


def module_system(env: Env, **settings: Any) -> AbstractAsyncContextManager[System]:
    """The module's system on its own database and topics; ``settings`` as ``running_system`` takes them
    (a module that needs other limits overrides its ``system`` fixture with this)."""
    return running_system(
        kafka_bootstrap=env.stack.kafka_bootstrap,
        database_url=env.database_url,
        topic_prefix=env.topic_prefix,
        secrets_key=SECRETS_KEY,
        bootstrap_client=(BOOTSTRAP_ID, BOOTSTRAP_SECRET),
        jwt_secret=JWT_SECRET,
        **settings,
    )


@pytest.fixture(scope="module")
async def system(env: Env) -> AsyncIterator[System]:
    async with module_system(env) as s:
        yield s


@pytest.fixture(scope="module")
def db(system: System) -> Pool:
    """The module's database, for assertions on the read model."""
    return system.pool
