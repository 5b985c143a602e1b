"""Benchmarks (not tests): each module prints figures; `python -m bench.run_all` runs all."""
