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


@st.fragment(run_every=refresh_interval())
def live() -> None:
    """Pending and recent decisions refresh themselves; the selection and comment stay."""
    try:
        pending = client.decisions(status=[DecisionStatus.PENDING_APPROVAL], limit=100)
    except ApiError as exc:
        st.error(f"Could not load decisions: {exc}")
        return

    st.subheader(f"Waiting for approval ({pending['count']})")
    if not pending["data"]:
        st.info("Nothing is waiting for approval.")
    else:
        decisions: dict[int, dict[str, Any]] = {d["decision_id"]: d for d in pending["data"]}

        def label(decision_id: int) -> str:
            d = decisions[decision_id]
            what = d["plan"]["summary"] if d["plan"] else d["action"]
            return f"#{decision_id} {d['policy']}: {what}"

        chosen = st.selectbox("Decision", list(decisions), key="pending_choice", format_func=label)
        decision = decisions[int(chosen)]
        st.markdown(
            f"Incident **#{decision['incident_id']}** · action `{decision['action']}` on "
            f"`{decision['target']}` · policy **{decision['policy']}** "
            f"(version `{decision['policy_version']}`, mode {decision['mode']})"
        )
        if decision["plan"]:
            st.markdown(f"**Plan:** {decision['plan']['summary']}")
            st.code(decision["plan"]["diff"] or "(no change)", language="diff")
        st.markdown("**Guardrails**")
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
            key="checks_table",
        )
        if decision["runbook"]:
            st.markdown(f"Runbook: `{decision['runbook']}` (see Policies and runbooks)")
        allowed = role in CAN_REVIEW
        comment = st.text_input(
            "Comment (required)",
            key="review_comment",
            disabled=not allowed,
            help=None if allowed else "Needs the operator role.",
        )
        left, right = st.columns(2)
        approve = left.button(
            "Approve", key="approve", type="primary", disabled=not allowed or switch["paused"]
        )
        reject = right.button("Reject", key="reject", disabled=not allowed)
        if approve or reject:
            if not comment.strip():
                st.error("A comment is required: say why.")
            else:
                try:
                    client.review(decision["decision_id"], approve=approve, comment=comment.strip())
                except ApiError as exc:
                    st.error(f"Refused: {exc}")
                else:
                    st.success(
                        f"Decision #{decision['decision_id']} "
                        + ("approved." if approve else "rejected.")
                    )
                    st.rerun()

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
