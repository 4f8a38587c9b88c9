"""Reports: the statistics of a study (`stats`, `paired`: intervals over seeds, the paired bootstrap), tables and
plotly charts (`tables`, `charts`), the verdict-first headline (`headline`), forgetting by relation (`relations`),
the report itself (`document`: HTML, results.json, CSV, manifest), the schema of its files (`files`), pooling
seeds of several runs (`accumulate`) and comparing two runs of the same seeds, e.g. on two machines (`between`).

Layer 1: imports only `interference.io` (and `numerics`); a report knows numbers and records, not models.
"""

from .document import SEED_COLUMNS, Headline, Report, Section, table
from .files import (
    ACCURACY_FIELDS,
    CONDITION_FIELDS,
    CSV_FILE,
    HTML_FILE,
    MANIFEST_FILE,
    REQUIRED_FIELDS,
    RESULTS_FILE,
    VERSION_FIELDS,
    check_condition,
    check_manifest,
    load_results,
    sha256,
    to_jsonable,
    validate_results,
    versions,
)

__all__ = ["ACCURACY_FIELDS", "CONDITION_FIELDS", "CSV_FILE", "HTML_FILE", "Headline", "MANIFEST_FILE",
           "REQUIRED_FIELDS", "RESULTS_FILE", "Report", "SEED_COLUMNS", "Section", "VERSION_FIELDS", "check_condition",
           "check_manifest", "load_results", "sha256", "table", "to_jsonable", "validate_results", "versions"]
