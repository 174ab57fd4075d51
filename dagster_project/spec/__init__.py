"""The metric YAML contract: raw pydantic models (exactly what a file says) and the
resolved metrics the compiler consumes. Imports neither dagster nor dbt."""
