"""Binds features/apps.feature to its steps (steps/apps_steps.py)."""

from pytest_bdd import scenarios

scenarios("apps.feature")
