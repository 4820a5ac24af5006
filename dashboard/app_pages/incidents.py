"""Incidents: open incidents with filters, a detail view (alerts, timeline), Ack / Resolve."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.api_client import ApiClient, ApiError

STATUSES = ["open", "acknowledged", "resolved"]
SEVERITIES = ["critical", "error", "warning", "info"]
SEVERITY_ICON = {"critical": "🔴", "error": "🟠", "warning": "🟡", "info": "🔵"}
PAGE_SIZE = 25
CAN_ACT = {"operator", "admin"}

client = ApiClient(st.session_state["token"])
role = st.session_state["user"]["role"]

st.title("Incidents")
with st.container(horizontal=True):
    statuses = st.multiselect(
        "Status", STATUSES, default=["open", "acknowledged"], key="filter_status"
    )
    severities = st.multiselect("Severity", SEVERITIES, key="filter_severity")
    service = st.text_input("Service", key="filter_service").strip()
page_no = st.number_input("Page", min_value=1, value=1, step=1, key="page")

try:
    listing = client.incidents(
        status=statuses,
        severity=severities,
        service=service or None,
        limit=PAGE_SIZE,
        offset=(int(page_no) - 1) * PAGE_SIZE,
    )
except ApiError as exc:
    st.error(f"Could not load incidents: {exc}")
    st.stop()

incidents: list[dict[str, Any]] = listing["data"]
st.caption(f"{listing['count']} incident(s) match; showing {len(incidents)}.")
if not incidents:
    st.info("No incidents match these filters.")
    st.stop()

rows = [
    {
        "id": i["incident_id"],
        "severity": f"{SEVERITY_ICON.get(i['severity'], '')} {i['severity']}",
        "status": i["status"],
        "service": i["service"] or "-",
        "title": i["title"],
        "opened": i["opened_at"],
        "acknowledged by": i["acknowledged_by"] or "",
    }
    for i in incidents
]
st.dataframe(rows, hide_index=True, width="stretch", key="incident_table")

choice = st.selectbox(
    "Incident",
    [i["incident_id"] for i in incidents],
    key="selected_incident",
    format_func=lambda i: next(f"#{r['id']} {r['title']}" for r in rows if r["id"] == i),
)
try:
    detail = client.incident(int(choice))
except ApiError as exc:
    st.error(f"Could not load incident #{choice}: {exc}")
    st.stop()

st.subheader(f"#{detail['incident_id']} {detail['title']}")
cols = st.columns(4)
cols[0].metric("Status", detail["status"])
cols[1].metric("Severity", detail["severity"])
cols[2].metric("Service", detail["service"] or "-")
cols[3].metric("Alerts", len(detail["alerts"]))

allowed = role in CAN_ACT
comment = st.text_input("Comment (kept in the timeline)", key="comment", disabled=not allowed)
left, right = st.columns(2)
ack = left.button(
    "Acknowledge",
    key="ack",
    disabled=not allowed or detail["status"] != "open",
    help=None if allowed else "Needs the operator role.",
)
res = right.button(
    "Resolve",
    key="resolve",
    disabled=not allowed or detail["status"] == "resolved",
    help=None if allowed else "Needs the operator role.",
)
if ack or res:
    try:
        (client.acknowledge if ack else client.resolve)(detail["incident_id"], comment)
    except ApiError as exc:
        st.error(f"Refused: {exc}")
    else:
        st.success(f"Incident #{detail['incident_id']} {'acknowledged' if ack else 'resolved'}.")
        st.rerun()

st.markdown("#### Alerts")
st.dataframe(
    [
        {
            "alert": a["name"],
            "status": a["status"],
            "severity": a["severity"],
            "started": a["starts_at"],
            "ended": a["ends_at"] or "",
            "labels": ", ".join(f"{k}={v}" for k, v in sorted(a["labels"].items())),
            "summary": a["annotations"].get("summary", ""),
        }
        for a in detail["alerts"]
    ],
    hide_index=True,
    width="stretch",
    key="alerts_table",
)

st.markdown("#### Timeline")
for entry in detail["timeline"]:
    st.markdown(
        f"- `{entry['at'][:19].replace('T', ' ')}` **{entry['kind']}** "
        f"({entry['actor']}): {entry['message']}"
    )
