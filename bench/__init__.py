"""Benchmarks for jitadmin against the emulators (`make bench`); not part of `make test`."""
