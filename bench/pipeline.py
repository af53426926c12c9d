"""The whole pipeline on this machine: CDR batches posted through the gateway until they are
rated and stored (the response of POST /v1/usage/records), and until the invoicing service's
projection has them (event relay + consumer), beside the raw ceilings of the same machine
measured in the same run: JetStream publish rate and PostgreSQL COPY rate.

    python -m bench.pipeline [records] [in_flight] [batch] [tariff]
        (default 1,000,000 records in batches of 5,000, two batches in flight at a time;
        "tariff": voice priced by the CGRateS engine from the imported oldtutorial plan, read
        in Europe/Berlin, with a destination-scoped 300-minute allowance per line consumed first)

Latency is per batch: from sending the POST to receiving the response that says every record
of it is rated and stored; p50/p99/max are over all batches.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import nats

from rateline_devstack.stack import Stack
from rateline_shared.engines import EmbeddedNats, EmbeddedPostgres

BATCH = 5_000
LINES = 200


async def jetstream_ceiling(url: str, n: int = 100_000, size: int = 600) -> float:
    nc = await nats.connect(url)
    js = nc.jetstream()
    await js.add_stream(name="BENCH", subjects=["bench.>"])
    payload = b"x" * size
    start = time.perf_counter()
    for offset in range(0, n, 1000):
        await asyncio.gather(*(js.publish("bench.x", payload) for _ in range(min(1000, n - offset))))
    elapsed = time.perf_counter() - start
    await js.delete_stream("BENCH")
    await nc.close()
    return n / elapsed


async def copy_ceiling(dsn: str, n: int = 200_000) -> float:
    conn = await asyncpg.connect(dsn.replace("postgresql+asyncpg", "postgresql"))
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS bench_copy (id text, source text, msisdn text, started_at timestamptz, "
        "duration int, amount numeric, currency text)"
    )
    now = datetime.now(UTC)
    rows = [(f"r{i}", "bench", "+4915100000000", now, 90, Decimal("0.2000"), "EUR") for i in range(n)]
    start = time.perf_counter()
    await conn.copy_records_to_table("bench_copy", records=rows)
    elapsed = time.perf_counter() - start
    await conn.execute("DROP TABLE bench_copy")
    await conn.close()
    return n / elapsed


async def pipeline(
    stack: Stack, total: int, in_flight: int = 2, batch: int = BATCH, tariff: bool = False
) -> dict[str, Any]:
    creds = stack.create_client(tenant="bench", scopes=["admin"], name="bench")
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=120) as http:
        tok = (await http.post("/oauth/token", data={"grant_type": "client_credentials"},
                               auth=(creds["client_id"], creds["client_secret"]))).json()["access_token"]
        http.headers["Authorization"] = f"Bearer {tok}"
        rates: list[dict[str, Any]] = [
            {"service": "voice", "unit": "minute", "price": "0.10", "first_increment": 60, "increment": 60}]
        allowances: list[dict[str, Any]] = []
        if tariff:  # voice by destination through the CGRateS engine, with a 300-minute bundle
            import io
            import zipfile

            from rateline_shared.testing import shared_data_dir

            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as z:
                for path in sorted((shared_data_dir() / "cgrates" / "oldtutorial").glob("*.csv")):
                    z.writestr(path.name, path.read_text())
            imported = await http.post("/v1/tariff-imports", data={"format": "cgrates", "currency": "EUR", "timezone": "Europe/Berlin"},
                                       files={"file": ("plan.zip", buf.getvalue(), "application/zip")})
            assert imported.status_code == 201, imported.text
            rates = [{"service": "voice", "unit": "minute", "pricing": "tariff", "tariff": {"category": "call", "subject": "1001"}}]
            allowances = [{"code": "VOICE-300", "service": "voice", "quantity": "300", "unit": "minute", "destinations": ["1002"]}]
        plan = (await http.post("/v1/plans", json={
            "code": "BENCH", "name": "Bench", "currency": "EUR", "recurring_fee": "5.00", "billing_period": "monthly",
            "effective_from": "2026-01-01T00:00:00Z", "rates": rates, "allowances": allowances})).json()
        msisdns = [f"+4915123{i:06d}" for i in range(LINES)]
        accounts = []
        for m in msisdns:
            acc = (await http.post("/v1/accounts", json={"name": m, "currency": "EUR", "timezone": "UTC"})).json()
            line = (await http.post(f"/v1/accounts/{acc['id']}/lines", json={"msisdn": m, "activated_at": "2026-01-01T00:00:00Z"})).json()
            while (await http.post("/v1/subscriptions", json={"account_id": acc["id"], "line_id": line["id"], "plan_id": plan["id"], "start_date": "2026-01-01"})).status_code != 201:
                await asyncio.sleep(0.1)
            accounts.append(acc["id"])
        for m in msisdns:
            while (await http.get(f"/v1/usage/subscribers/{m}")).json().get("currency") is None:
                await asyncio.sleep(0.1)
        base = datetime(2026, 10, 1, tzinfo=UTC)
        latencies: list[float] = []
        batches = asyncio.Queue[int]()
        for b in range(0, total, batch):
            batches.put_nowait(b)

        async def poster() -> None:
            while not batches.empty():
                b = batches.get_nowait()
                records = [{"source": "bench", "record_id": f"b{i}", "service": "voice", "msisdn": msisdns[i % LINES],
                            "destination": ("1002", "1003")[i % 2],
                            "started_at": (base + timedelta(seconds=i % 2_000_000)).isoformat(),
                            "duration_seconds": 1 + i % 600}
                           for i in range(b, min(total, b + batch))]
                body = json.dumps({"records": records})
                t0 = time.perf_counter()
                resp = await http.post("/v1/usage/records", content=body, headers={"Content-Type": "application/json"})
                assert resp.status_code == 200 and resp.json()["rated"] == len(records), resp.text[:500]
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(poster() for _ in range(in_flight)))
        ingest = time.perf_counter() - start
        # Until invoicing's projection has every record (usage outbox -> JetStream -> invoicing inbox).
        while True:
            seen = 0
            for acc in accounts[:: max(1, LINES // 20)]:
                body = (await http.get("/v1/billable-usage", params={"account_id": acc, "period_start": "2026-10-01", "period_end": "2026-11-01"})).json()
                seen += body["records"]
            expected = sum(1 for i in range(total) if (i % LINES) % max(1, LINES // 20) == 0)
            if seen >= expected:
                break
            await asyncio.sleep(0.2)
        propagated = time.perf_counter() - start
    return {
        "records": total,
        "ingest_seconds": ingest,
        "ingest_rate": total / ingest,
        "in_flight": in_flight,
        "batch": batch,
        "batch_p50": statistics.median(latencies),
        "batch_p99": statistics.quantiles(latencies, n=100, method="inclusive")[98] if len(latencies) > 1 else latencies[0],
        "batch_max": max(latencies),
        "to_invoicing_seconds": propagated,
        "to_invoicing_rate": total / propagated,
    }


def main() -> None:
    total = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    in_flight = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else BATCH
    tariff = len(sys.argv) > 4 and sys.argv[4] == "tariff"
    with tempfile.TemporaryDirectory(prefix="rateline-bench-") as tmp:
        work = Path(tmp)
        pg = EmbeddedPostgres(work / "pg" / "data").start()
        nc = EmbeddedNats(work / "nats").start()
        stack = Stack(workdir=work, pg=pg, nats=nc, db_prefix="bench", log_dir=work / "logs")
        try:
            stack.start()
            pg.ensure_database("bench_raw")
            js_rate = asyncio.run(jetstream_ceiling(nc.url))
            copy_rate = asyncio.run(copy_ceiling(pg.url("bench_raw")))
            r = asyncio.run(pipeline(stack, total, in_flight, batch, tariff))
        finally:
            stack.stop()
            nc.stop()
            pg.stop()
    print(f"machine: {os.cpu_count()} cores")
    print("| figure | value |")
    print("|---|---|")
    pricing = "tariff (CGRateS engine) + allowance" if tariff else "per-minute plan rate"
    print(f"| records posted through the gateway | {r['records']:,} in batches of {r['batch']:,}, {r['in_flight']} in flight; voice priced by {pricing} |")
    print(f"| ingest: rated and stored (response received) | {r['ingest_rate']:,.0f} records/s ({r['ingest_seconds']:.1f} s) |")
    print(f"| ingest-to-rated latency per batch of {r['batch']:,}: p50 / p99 / max | {r['batch_p50']:.2f} s / {r['batch_p99']:.2f} s / {r['batch_max']:.2f} s |")
    print(f"| until invoicing's projection has them all | {r['to_invoicing_rate']:,.0f} records/s ({r['to_invoicing_seconds']:.1f} s) |")
    print(f"| ceiling: JetStream publish (600 B, async batches of 1,000) | {js_rate:,.0f} msgs/s |")
    print(f"| ceiling: PostgreSQL COPY (7 columns) | {copy_rate:,.0f} rows/s |")


if __name__ == "__main__":
    main()
