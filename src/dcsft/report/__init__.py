"""Report: tables and figures built from the run directory."""
