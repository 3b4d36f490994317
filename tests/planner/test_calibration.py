"""Predicted vs published for every row of components/facts/measurements.yaml (±25%).

Run with -s to see the table (the README's calibration table is this output).
"""

from __future__ import annotations

import pytest

from components.planner import calibration, perf

TOLERANCE = 0.25


def test_every_published_measurement_is_predicted_within_25_percent():
    rows = calibration.table()
    assert rows, "measurements.yaml has no rows"
    print()
    print(f"{'measurement':46s} {'published':>12s} {'predicted':>12s} {'error':>8s}")
    for r in rows:
        print(f"{r.id:46s} {r.published:>12,.0f} {r.predicted:>12,.0f} {r.error:>+8.1%}")
    off = [f"{r.id}: predicted {r.predicted:,.0f} vs published {r.published:,.0f} ({r.error:+.1%})"
           for r in rows if abs(r.error) > TOLERANCE]
    assert not off, "\n".join(off)


def test_every_row_names_its_source():
    for row in perf.measurements()["measurements"]:
        assert row.get("source"), row["id"]
        assert row["published"] > 0


@pytest.mark.parametrize("name", ["bandwidth_efficiency", "decode_compute_efficiency", "prefill_compute_efficiency",
                                  "interconnect_efficiency"])
def test_efficiencies_are_shares_of_peak(name):
    assert 0 < perf.measurements()["constants"][name] <= 1
