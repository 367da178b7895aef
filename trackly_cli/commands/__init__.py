"""Thin Typer sub-apps, one per noun: parse options, call the core, render the result."""
