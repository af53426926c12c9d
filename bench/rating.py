"""Pure rating speed: records rated per second on one core (no I/O)."""

from __future__ import annotations

import random
import time
from decimal import Decimal

from rateline_usage.domain.rating import Rate, rate_usage

VOICE = Rate(service="voice", unit="minute", price=Decimal("0.10"), first_increment=60, increment=60)
SMS = Rate(service="sms", unit="message", price=Decimal("0.05"))


def run(n: int = 500_000) -> dict[str, float]:
    rng = random.Random(7)
    work = [("voice", rng.randrange(0, 3600), VOICE) if rng.random() < 0.8 else ("sms", 1, SMS) for _ in range(n)]
    start = time.perf_counter()
    total = Decimal(0)
    for service, quantity, rate in work:
        total += rate_usage(service, quantity, rate).amount
    elapsed = time.perf_counter() - start
    return {"records": n, "seconds": elapsed, "records_per_second": n / elapsed}


if __name__ == "__main__":
    r = run()
    print(f"rating (pure, one core): {r['records']:,} records in {r['seconds']:.2f} s = {r['records_per_second']:,.0f} records/s")
