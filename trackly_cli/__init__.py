"""Trackly: a self-hosted SMS link tracker."""

__version__ = "0.1.0"
