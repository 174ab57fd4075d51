"""Anomaly detection for metric series: pure functions (numpy and pandas only, no Dagster,
dbt or warehouse). `score_series` scores one slice of one metric at one grain and returns
the rows of `metric_anomalies` without their key and provenance columns (DESIGN.md,
"Anomaly detection"); `score_many` does the same for many slices at once (the fast path:
one frame with a `job` column); `merge_incidents` groups consecutive flagged buckets."""
from .incidents import merge_incidents
from .rows import COLUMNS
from .score import SeriesJob, score_many, score_series
from .settings import DetectorSettings, default_training_buckets, history_needed, min_history

__all__ = ["COLUMNS", "DetectorSettings", "SeriesJob", "default_training_buckets", "history_needed",
           "merge_incidents", "min_history", "score_many", "score_series"]
