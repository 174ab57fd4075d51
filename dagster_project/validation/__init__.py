"""Validation: every problem in a metrics project, each with a file, a line and a fix."""
