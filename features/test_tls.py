"""Binds features/tls.feature to its steps (steps/tls_steps.py)."""

from pytest_bdd import scenarios

scenarios("tls.feature")
