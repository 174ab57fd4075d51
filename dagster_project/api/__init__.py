"""`metrics serve`: the read API over the rollups (app.py)."""
