"""Tests of the benchmarks in bench/ (what they run and print, never their timings)."""
