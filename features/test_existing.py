"""Binds features/existing.feature to its steps (steps/existing_steps.py)."""

from pytest_bdd import scenarios

scenarios("existing.feature")
