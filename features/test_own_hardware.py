"""Binds features/own_hardware.feature to its steps (steps/own_hardware_steps.py)."""

from pytest_bdd import scenarios

scenarios("own_hardware.feature")
