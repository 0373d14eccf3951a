"""Benchmarks: each compares the library against raw grpcio in the same run (ratios)."""
