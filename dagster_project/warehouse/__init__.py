"""Talking to the warehouse outside dbt: loading raw data and reading series."""
