"""Approvals: decisions waiting for a human, with the plan's diff, the guardrails and the
policy; Approve / Reject with a required comment; recent decisions; the kill switch (admin)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from controlplane.domain.models import DecisionStatus
from dashboard.api_client import ApiClient, ApiError
from dashboard.live import refresh_interval
from dashboard.loading import load_or_stop

CAN_REVIEW = {"operator", "admin"}
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


def review_box(decision: dict[str, Any]) -> None:
    """One pending decision with its own comment and buttons: a click can only act on the
    decision shown around it, and its comment belongs to it alone."""
    number = decision["decision_id"]
    what = decision["plan"]["summary"] if decision["plan"] else decision["action"]
    st.markdown(f"**#{number} · {decision['policy']}**: {what}")
    st.markdown(
        f"Incident **#{decision['incident_id']}** · action `{decision['action']}` on "
        f"`{decision['target']}` · policy version `{decision['policy_version']}`, "
        f"mode {decision['mode']} · planned {decision['created_at'][:19].replace('T', ' ')} UTC"
    )
    if decision["plan"]:
        st.code(decision["plan"]["diff"] or "(no change)", language="diff")
    st.dataframe(
        [
            {
                "guardrail": c["guardrail"],
                "verdict": "pass" if c["ok"] else "REFUSE",
                "detail": c["detail"],
            }
            for c in decision["checks"]
        ],
        hide_index=True,
        width="stretch",
        key=f"checks-{number}",
    )
    if decision["runbook"]:
        st.markdown(f"Runbook: `{decision['runbook']}` (see Policies and runbooks)")
    allowed = role in CAN_REVIEW
    comment_key = f"comment-{number}"
    comment = st.text_input(
        f"Comment on #{number} (required)",
        key=comment_key,
        disabled=not allowed,
        help=None if allowed else "Needs the operator role.",
    )
    left, right = st.columns(2)
    approve = left.button(
        f"Approve #{number}",
        key=f"approve-{number}",
        type="primary",
        disabled=not allowed or switch["paused"],
    )
    reject = right.button(f"Reject #{number}", key=f"reject-{number}", disabled=not allowed)
    if not (approve or reject):
        return
    if not comment.strip():
        st.error(f"A comment is required to {'approve' if approve else 'reject'} #{number}.")
        return
    try:
        reviewed = client.review(number, approve=approve, comment=comment.strip())
    except ApiError as exc:
        st.error(f"#{number} refused: {exc}")
        return
    st.session_state["review_done"] = (
        f"#{number} ({decision['policy']}: {what}) {reviewed['status']} by "
        f"{reviewed['reviewed_by']}: “{reviewed['review_comment']}”"
    )
    st.session_state.pop(comment_key, None)
    st.rerun()


@st.fragment(run_every=refresh_interval())
def live() -> None:
    """Pending and recent decisions refresh themselves; the selection and comment stay."""
    try:
        pending = client.decisions(status=[DecisionStatus.PENDING_APPROVAL], limit=100)
    except ApiError as exc:
        st.error(f"Could not load decisions: {exc}")
        return

    st.subheader(f"Waiting for approval ({pending['count']})")
    done = st.session_state.get("review_done")
    if done:
        st.success(done)
    if not pending["data"]:
        st.info("Nothing is waiting for approval.")
    for decision in pending["data"]:
        with st.container(border=True):
            review_box(decision)

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
