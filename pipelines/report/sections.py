"""The sections of the report, in page order: each a module of its own, listed here once.

Every section is a pure function from `ReportInputs` to a `Section`. Every section says in one
sentence how to read it, and when it has nothing to show it says why instead of showing an
empty frame. A column a mart may or may not have (marts gain columns between releases) is
used only when present. Grids are cut by quantiles or capped (24 cohorts, 30 bins, 201 curve
points, 12 channels), so the page has the same size at a thousand customers and at ten million.
"""

from __future__ import annotations

from pipelines.report.abc_classes import abc_section
from pipelines.report.clv import clv_section, top_customers_section
from pipelines.report.cohorts import cohort_section
from pipelines.report.journey import journey_section
from pipelines.report.kpis import kpi_section
from pipelines.report.model_section import model_section
from pipelines.report.quality import quality_section
from pipelines.report.segments import segments_section
from pipelines.report.tiers_and_stages import tiers_section

SECTIONS = (
    kpi_section,
    segments_section,
    abc_section,
    tiers_section,
    journey_section,
    cohort_section,
    clv_section,
    top_customers_section,
    model_section,
    quality_section,
)
