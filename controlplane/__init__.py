"""AIOps control plane: the core package (settings, domain, storage, incidents, API, CLI).

Plugins (`detectors`, `forecasters`, `remediations`) depend only on `controlplane.domain`.
"""

__version__ = "0.1.0"
