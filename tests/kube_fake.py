"""The fake Kubernetes API server the tests drive through the official client.

It lives in `controlplane/demo/kube.py` because `make demo` uses the same server as its
Kubernetes stand-in; see that module for the semantics it honours.
"""

from controlplane.demo.kube import REVISION, FakeKube, Request

__all__ = ["REVISION", "FakeKube", "Request"]
