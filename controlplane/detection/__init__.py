"""Detection: signals -> detectors -> anomalies -> incidents (scheduler), plus offline runs."""
