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


def test_an_overflowed_value_is_a_gap_in_the_chart_not_a_crash():
    """A metric whose expression overflows a double (`power(amount, 200)`) stored inf and
    1e305: `metrics docs` crashed in the axis ticks (OverflowError) and left a half-written
    catalog, and the dashboard answered 400."""
    from dagster_project.catalog.svg import sparkline
    points = [(t, v) for t, v in zip(DAYS, [1e305, -1e305, float("inf"), float("nan"), 5.0, 7.0, 6.0])]
    svg = chart([Line("total", points, [(DAYS[2], float("inf"), "inf")])], DAYS[0], DAYS[-1], "weird by day")
    solid = re.search(r'<path class="series"[^>]* d="([^"]+)"', svg).group(1)
    assert solid.count("M") == 1 and solid.count("L") == 2  # the three finite days, drawn
    assert "inf" not in svg.lower().replace("weird", "") and "nan" not in svg.lower()
    assert "<path" in sparkline(points)
