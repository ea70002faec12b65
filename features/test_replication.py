"""Binds features/replication.feature to its steps (steps/replication_steps.py)."""

from pytest_bdd import scenarios

scenarios("replication.feature")
