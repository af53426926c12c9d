"""The tenant's tariff plan in force, compiled once per import and kept in this process.

``catalog.tariff.imported`` stores the import's files (gzip + base64) in ``tariff_imports``;
the first batch that needs the tariff compiles the tenant's latest import with
``rateline_rating.tariffs.csvimport.parse_tariff_plan`` and keeps the result here, keyed by
import id, for every later record and batch (the engine also keeps its own index per compiled
plan). A newer import changes the latest id, so it is compiled on first use; old ones fall out
of the small LRU.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from sqlalchemy.ext.asyncio import AsyncSession

from rateline_usage import repository as repo
from rateline_usage.domain.tariffing import TariffBook, TariffFilesError, compile_tariff

MAX_COMPILED = 16


class TariffCache:
    """Compiled tariff plans by (tenant, import id); a failed compilation is remembered too."""

    def __init__(self, size: int = MAX_COMPILED) -> None:
        self.size = size
        self._items: OrderedDict[tuple[str, str], TariffBook | str] = OrderedDict()
        self._lock = threading.Lock()
        self.compilations = 0  # how many times a plan was compiled (tests check it stays 1)

    def get(self, key: tuple[str, str]) -> TariffBook | str | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: tuple[str, str], value: TariffBook | str) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


CACHE = TariffCache()


async def tariff_in_force(session: AsyncSession, tenant: str) -> tuple[TariffBook | None, str | None]:
    """The tenant's compiled tariff in force, or ``(None, why)`` (``why`` None: none imported)."""
    ref = await repo.latest_tariff_import(session, tenant)
    if ref is None:
        return None, None
    key = (tenant, ref.id)
    compiled = CACHE.get(key)
    if compiled is None:
        files = await repo.tariff_files(session, tenant, ref.id)
        try:
            compiled = compile_tariff(ref.id, ref.currency, ref.timezone, files)
        except TariffFilesError as exc:
            compiled = f"tariff import {ref.id} cannot be used: {exc}"
        CACHE.compilations += 1
        CACHE.put(key, compiled)
    if isinstance(compiled, str):
        return None, compiled
    return compiled, None
