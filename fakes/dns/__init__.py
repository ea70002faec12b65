"""Authoritative DNS for the fake account's domains."""
