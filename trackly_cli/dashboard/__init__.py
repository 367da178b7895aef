"""The operator's dashboard: a Bottle app of its own, served by `trackly dashboard`."""
