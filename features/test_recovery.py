"""Binds features/recovery.feature to its steps (steps/recovery_steps.py)."""

from pytest_bdd import scenarios

scenarios("recovery.feature")
