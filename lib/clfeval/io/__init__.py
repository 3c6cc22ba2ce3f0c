"""Session building, Delta reads and idempotent writes; no math here."""
