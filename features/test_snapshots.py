"""Binds features/snapshots.feature to its steps (steps/snapshot_steps.py)."""

from pytest_bdd import scenarios

scenarios("snapshots.feature")
