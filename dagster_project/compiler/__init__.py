"""The compiler: resolved metrics in, dbt models and their properties out."""
