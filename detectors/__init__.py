"""Anomaly detectors (scikit-learn style: fit, score_samples, causal streaming update).

Sees only `controlplane.domain`. The algorithms and their REGISTRY arrive with the detection
work (issue 3); nothing here is wired into the control plane yet.
"""
