"""Remediation actions (plan, execute with dry-run, verify, roll back). Only
`remediations/_kube.py` will import the Kubernetes client. Arrives with issue 5.
"""
