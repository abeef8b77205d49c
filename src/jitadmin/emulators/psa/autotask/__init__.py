"""Autotask PSA emulator."""
