"""Distribution: segment planning, Ray workers, the submit/restore pipelines (driver side)."""
