"""Binds features/node.feature to its steps (steps/node_steps.py)."""

from pytest_bdd import scenarios

scenarios("node.feature")
