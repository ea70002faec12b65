"""Binds features/storage.feature to its steps (steps/storage_steps.py)."""

from pytest_bdd import scenarios

scenarios("storage.feature")
