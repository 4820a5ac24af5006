"""Test harness the project ships, as kopf ships `kopf.testing`: a faithful fake Kubernetes
API server (`kube.FakeKube`) and launchers of the real servers on loopback
(`servers`: the API in a thread, Prometheus with backfilled history, Alertmanager, the
console). The demo and the tests use the same pieces, so the demo runs the wiring the tests
check. Of the product, only the demo imports it (an import contract says so)."""
