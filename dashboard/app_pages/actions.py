"""Actions and audit: executions with their status, verification and rollback; the audit log
with filters, pages, and a JSON-lines download."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, time
from typing import Any

import streamlit as st

from controlplane.domain.models import DecisionStatus
from dashboard.api_client import ApiClient, ApiError
from dashboard.loading import load_or_stop
from dashboard.timefmt import fields, utc

EXECUTED = [s.value for s in DecisionStatus if s.executed]
PAGE_SIZE = 50
client = ApiClient(st.session_state["token"])


def _running_for(decision: dict[str, Any]) -> str:
    """How long an execution has run (or ran), in seconds."""
    if not decision["started_at"]:
        return ""
    started = datetime.fromisoformat(decision["started_at"])
    ended = datetime.fromisoformat(decision["finished_at"]) if decision["finished_at"] else None
    return f"{((ended or datetime.now(UTC)) - started).total_seconds():.0f} s"


st.title("Actions and audit")

st.subheader("Executions")
executions = load_or_stop("executions", lambda: client.decisions(status=EXECUTED, limit=50))
if not executions["data"]:
    st.info("No action has run yet.")
else:
    outcomes = Counter(d["status"].replace("_", " ") for d in executions["data"])
    st.caption(
        f"{executions['count']} execution(s); of the latest {len(executions['data'])}: "
        + ", ".join(f"{n} {status}" for status, n in sorted(outcomes.items()))
    )
    st.dataframe(
        [
            {
                "id": d["decision_id"],
                "incident": d["incident_id"],
                "policy": d["policy"],
                "action": d["action"],
                "target": d["target"],
                "status": d["status"],
                "step": d["reason"] if d["status"] == "executing" else "",
                "running for": _running_for(d),
                "verification": (d["outcome"] or {}).get("verify", {}).get("message", ""),
                "rollback": (d["outcome"] or {}).get("rollback", {}).get("message", ""),
                "approved by": d["reviewed_by"] or "",
                "finished": (d["finished_at"] or "")[:19].replace("T", " "),
            }
            for d in executions["data"]
        ],
        hide_index=True,
        width="stretch",
    )

st.subheader("Audit log")
with st.container(horizontal=True):
    actor = st.text_input("Actor", key="audit_actor").strip()
    action = st.text_input("Action (prefix)", key="audit_action", placeholder="decision.").strip()
    target_type = st.selectbox(
        "Target type",
        ["", "incident", "decision", "automation", "token"],
        key="audit_target_type",
    )
    target_id = st.text_input("Target id", key="audit_target_id").strip()
    since = st.date_input("Since", value=None, key="audit_since")
page_no = st.number_input("Page", min_value=1, value=1, step=1, key="audit_page")
filters = {
    "actor": actor,
    "action": action,
    "target_type": target_type,
    "target_id": target_id,
    "since": datetime.combine(since, time(), UTC).isoformat() if since else None,
}
audit = load_or_stop(
    "the audit log",
    lambda: client.audit(limit=PAGE_SIZE, offset=(int(page_no) - 1) * PAGE_SIZE, **filters),
)
st.caption(f"{audit['count']} audit event(s) match; page {int(page_no)}.")
if not audit["data"]:
    st.info("No audit events match these filters.")
else:
    st.dataframe(
        [
            {
                "at": utc(e["at"]),
                "actor": e["actor"],
                "action": e["action"],
                "target": f"{e['target_type']} {e['target_id']}",
                "details": fields(e["details"]),
            }
            for e in audit["data"]
        ],
        hide_index=True,
        width="stretch",
    )
if st.button("Prepare JSON-lines download", key="prepare_export"):
    try:
        st.session_state["audit_export"] = client.audit_export(**filters)
    except ApiError as exc:
        st.error(f"Could not export: {exc}")
if "audit_export" in st.session_state:
    st.download_button(
        "Download audit.jsonl",
        st.session_state["audit_export"],
        file_name="audit.jsonl",
        mime="application/x-ndjson",
        key="download_export",
    )
