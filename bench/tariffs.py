"""CGRateS-compatible tariff rating speed (libs/rating's pure engine): quotes per second, one core.

Calls from 1001 to 1002/1003 of 1-900 s at random times of a week, on the `oldtutorial` plan
from shared/data (peak, off-peak, weekend bands and rate steps exercised).
"""

from __future__ import annotations

import datetime as dt
import random
import time

from rateline_rating.tariffs.csvimport import parse_tariff_plan
from rateline_rating.tariffs.engine import get_cost
from rateline_shared.testing import shared_data_dir


def run(n: int = 50_000, timezone: str | None = None) -> dict[str, float]:
    """``timezone``: read the plan's time bands in that zone (the slower, DST-aware path)."""
    folder = shared_data_dir() / "cgrates" / "oldtutorial"
    plan = parse_tariff_plan({p.name: p.read_text() for p in folder.glob("*.csv")})
    rng = random.Random(11)
    base = dt.datetime(2014, 8, 4, tzinfo=dt.UTC)
    calls = [
        (rng.choice(["1002", "1003"]), base + dt.timedelta(seconds=rng.randrange(7 * 86400)), dt.timedelta(seconds=rng.randrange(1, 900)))
        for _ in range(n)
    ]
    start = time.perf_counter()
    for destination, when, usage in calls:
        get_cost(plan.profiles, "call", "1001", destination, when, usage, timezone=timezone)
    elapsed = time.perf_counter() - start
    return {"records": n, "seconds": elapsed, "records_per_second": n / elapsed}


if __name__ == "__main__":
    r = run()
    print(f"tariff rating (CGRateS engine, pure, one core): {r['records']:,} calls in {r['seconds']:.2f} s = {r['records_per_second']:,.0f} calls/s")
    z = run(timezone="Europe/Berlin")
    print(f"tariff rating, time bands in Europe/Berlin: {z['records']:,} calls in {z['seconds']:.2f} s = {z['records_per_second']:,.0f} calls/s")
