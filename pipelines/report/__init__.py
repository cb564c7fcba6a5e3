"""The snapshot report: one self-contained HTML page a marketer reads, published with the marts.

inputs.py         what a page is rendered from (published tables, manifest) and reading it
sections.py       the sections in page order, one module each:
  kpis.py              the key-figure cards and their changes, LTV:CAC
  segments.py          customers and revenue per RFM segment
  abc_classes.py       the ABC classes' Pareto curve
  tiers_and_stages.py  loyalty tiers and lifecycle stages
  cohorts.py           cohort retention heatmap
  clv.py               CLV distribution and deciles, top customers
  model_section.py     the predictive models: parameters, P(alive) matrix, backtest, drift
  quality.py           reconciliation, quarantine reasons, the validation report's link
segment_shares.py shares of customers and revenue per group (segments, tiers and stages)
blocks.py         what a page is made of (cards, tables, figures, notes) and number formats
figures.py        the plots, as inline SVG (matplotlib, no GUI)
render.py         inputs -> HTML string (Jinja2, `template.html.j2`); pure
publish.py        into the snapshot version at commit, or again from a published snapshot
"""
