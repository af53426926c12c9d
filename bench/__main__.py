"""make bench: every benchmark in turn; each prints its figures (see docs/benchmarks.md)."""

from bench import pipeline, rating

if __name__ == "__main__":
    r = rating.run()
    print(f"rating (pure, one core): {r['records']:,} records in {r['seconds']:.2f} s = {r['records_per_second']:,.0f} records/s\n")
    pipeline.main()
