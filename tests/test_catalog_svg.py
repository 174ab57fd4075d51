"""Catalog charts: the bucket in progress is drawn apart (dashed, hollow), never as the
last point of the solid line, so a half-built day does not read as a drop."""
import datetime as dt
import re

from dagster_project.catalog.svg import Line, chart

DAYS = [dt.datetime(2026, 11, d) for d in range(1, 8)]


def test_the_bucket_in_progress_is_not_part_of_the_solid_line():
    points = [(t, 100.0 + i) for i, t in enumerate(DAYS[:-1])] + [(DAYS[-1], 12.0)]
    svg = chart([Line("total", points, [], partial=DAYS[-1])], DAYS[0], DAYS[-1], "orders by day")
    solid = re.search(r'<path class="series"[^>]* d="([^"]+)"', svg).group(1)
    assert solid.count("L") == len(DAYS) - 2  # six complete days: one move, five line segments
    assert 'class="partial"' in svg and "stroke-dasharray" in svg and "so far (bucket in progress)" in svg


def test_without_a_bucket_in_progress_every_point_is_on_the_line():
    points = [(t, 100.0 + i) for i, t in enumerate(DAYS)]
    svg = chart([Line("total", points, [])], DAYS[0], DAYS[-1], "orders by day")
    solid = re.search(r'<path class="series"[^>]* d="([^"]+)"', svg).group(1)
    assert solid.count("L") == len(DAYS) - 1 and 'class="partial"' not in svg
