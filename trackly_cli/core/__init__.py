"""Trackly's domain logic: plain modules that know nothing of Typer, Rich, Bottle or waitress.

Nothing in this package reads environment variables or prints: callers pass what is needed and
render what comes back.
"""
