"""Approvals: decisions waiting for a human, with the plan's diff, the guardrails and the
policy; Approve / Reject with a required comment; recent decisions; the kill switch (admin)."""

from __future__ import annotations

import streamlit as st

from controlplane.domain.models import DecisionStatus
from dashboard.api_client import ApiClient, ApiError
from dashboard.live import live_fragment
from dashboard.loading import load_or_stop
from dashboard.reviews import confirm_review, review_box

RECENT = [s.value for s in DecisionStatus if s is not DecisionStatus.PENDING_APPROVAL]

client = ApiClient(st.session_state["token"])
role = st.session_state["user"]["role"]

st.title("Approvals")

switch = load_or_stop("the automation state", client.automation)
if switch["paused"]:
    st.warning(
        f"Automation is **paused** by {switch['changed_by']}"
        + (f": {switch['reason']}" if switch["reason"] else "")
        + ". Nothing that changes a system will run."
    )
with st.expander("Kill switch", expanded=switch["paused"]):
    is_admin = role == "admin"
    pausing = not switch["paused"]
    reason = st.text_input("Reason (required, audited)", key="switch_reason", disabled=not is_admin)
    confirmed = st.checkbox(
        "Yes: stop every automated change now" if pausing else "Yes: let automation act again",
        key="switch_confirm",
        disabled=not is_admin,
    )
    ready = is_admin and confirmed and bool(reason.strip())
    if st.button(
        "Pause all automation" if pausing else "Resume automation",
        key="switch",
        disabled=not ready,
        help="Needs the admin role." if not is_admin else "Give a reason and confirm first.",
    ):
        try:
            client.set_paused(pausing, reason.strip())
        except ApiError as exc:
            st.error(f"Refused: {exc}")
        else:
            for key in ("switch_reason", "switch_confirm"):
                st.session_state.pop(key, None)
            st.toast(f"Automation {'paused' if pausing else 'resumed'}: {reason.strip()}")
            st.rerun()


@live_fragment()
def live() -> None:
    """Pending and recent decisions refresh themselves; the selection and comment stay."""
    try:
        pending = client.decisions(status=[DecisionStatus.PENDING_APPROVAL], limit=100)
    except ApiError as exc:
        st.error(f"Could not load decisions: {exc}")
        return

    st.subheader(f"Waiting for approval ({pending['count']})")
    confirm_review()
    if not pending["data"]:
        st.info("Nothing is waiting for approval.")
    for decision in pending["data"]:
        with st.container(border=True):
            review_box(client, decision, role=role, paused=switch["paused"])

    st.subheader("Recent decisions")
    try:
        recent = client.decisions(status=RECENT, limit=25)
    except ApiError as exc:
        st.error(f"Could not load decisions: {exc}")
        return
    if not recent["data"]:
        st.info("No decisions yet.")
    else:
        st.dataframe(
            [
                {
                    "id": d["decision_id"],
                    "incident": d["incident_id"],
                    "policy": d["policy"],
                    "mode": d["mode"],
                    "status": d["status"],
                    "target": d["target"],
                    "reason": d["reason"],
                    "reviewed by": d["reviewed_by"] or "",
                    "decided": d["created_at"][:19].replace("T", " "),
                }
                for d in recent["data"]
            ],
            hide_index=True,
            width="stretch",
            key="recent_table",
        )


live()
