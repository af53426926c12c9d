"""make bench: every benchmark in turn; each prints its figures (see docs/benchmarks.md)."""

from bench import pipeline, rating, tariffs

if __name__ == "__main__":
    r = rating.run()
    print(f"rating (plan rates, pure, one core): {r['records']:,} records in {r['seconds']:.2f} s = {r['records_per_second']:,.0f} records/s")
    t = tariffs.run()
    print(f"tariff rating (CGRateS engine, pure, one core): {t['records']:,} calls in {t['seconds']:.2f} s = {t['records_per_second']:,.0f} calls/s")
    z = tariffs.run(timezone="Europe/Berlin")
    print(f"tariff rating, time bands in Europe/Berlin: {z['records']:,} calls in {z['seconds']:.2f} s = {z['records_per_second']:,.0f} calls/s\n")
    pipeline.main()
