"""Deterministic demo data shaped like a real product's."""
