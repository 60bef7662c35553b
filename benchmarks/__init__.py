"""Boxoffice benchmarks: `python -m benchmarks` (`make bench`, `make bench-smoke`).

See benchmarks/README.md for what is measured and how, docs/benchmarks.md for results.
"""
