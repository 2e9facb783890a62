"""Imported by the local fork server alone, as the last of its preloaded modules: every object
the imports made moves to the collector's permanent generation (`gc.freeze`).

A worker is a fork of the server and shares its pages until it writes to one. The collector's
passes write to every object they visit (its header's bookkeeping), so left as they are, a
worker's first collections copy most of the imported scikit-learn, pandas and MLflow into pages
of its own: ~130 MB a worker, measured. Frozen objects are never visited: they stay shared.
"""

from __future__ import annotations

import gc

gc.collect()  # what the imports left as garbage is freed, not frozen
gc.freeze()
