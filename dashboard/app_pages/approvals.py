"""Approvals: decisions waiting for a human, with the plan's diff, the guardrails and the
policy; Approve / Reject with a required comment; one decision by its link (`?decision=N`:
reviewed, planned again when stale, or its record); recent decisions, each linked; the kill
switch (admin)."""

from __future__ import annotations

import streamlit as st

from controlplane.domain.models import DecisionStatus
from dashboard.api_client import ApiClient, ApiError
from dashboard.live import live_fragment
from dashboard.loading import load_or_stop
from dashboard.reviews import confirm_review, describe, replan_box, review_box
from dashboard.timefmt import fields, plain

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


def signed_link(decision_id: int) -> str | None:
    """The signed approval link the page was opened with (`&link=...`, from a message), when
    it is valid for this decision and its plan; otherwise why not, and None."""
    link = st.query_params.get("link")
    if not link:
        return None
    try:
        opened = client.approval_link(link)
    except ApiError as exc:
        st.warning(f"The approval link from the message cannot be used: {exc}")
        return None
    if opened["decision"]["decision_id"] != decision_id:
        st.warning("The approval link is for another decision; review this one below.")
        return None
    if opened["used"]:
        st.info("The approval link was already used; this decision's record is below.")
        return None
    if opened["plan_changed"]:
        st.warning(
            "The plan changed since the message was sent: the link cannot approve it. "
            "Read the new plan below and review it here."
        )
        return None
    st.info(f"Opened from a signed approval link, valid until {opened['expires_at'][:19]} UTC.")
    return str(link)


def linked_decision() -> int | None:
    """The decision the URL names (`?decision=N`, a link that can be pasted into chat); its
    number when shown (the list below leaves it out: one set of buttons per decision)."""
    value = st.query_params.get("decision")
    if value is None:
        return None
    if not value.isdigit():
        st.error(f"The link names decision {value!r}: not a decision number.")
        return None
    try:
        decision = client.decision(int(value))
    except ApiError as exc:
        st.error(f"Could not load decision #{value}: {exc}")
        return None
    st.subheader(f"Decision #{value}: {decision['status']}")
    link = signed_link(int(value))
    with st.container(border=True):
        if decision["status"] == DecisionStatus.PENDING_APPROVAL:
            review_box(client, decision, role=role, paused=switch["paused"], link=link)
        elif decision["status"] == DecisionStatus.STALE:
            replan_box(client, decision, role=role)
        else:
            describe(decision)
            st.markdown(f"**{decision['status']}**: {plain(decision['reason'])}")
            for step, result in (decision["outcome"] or {}).items():
                st.markdown(f"- **{step}**: {fields(result)}")
        st.page_link(
            "app_pages/incidents.py",
            label=f"Incident #{decision['incident_id']}",
            query_params={"incident": str(decision["incident_id"])},
        )
    return int(value)


@live_fragment()
def live() -> None:
    """Pending and recent decisions refresh themselves; the selection and comment stay."""
    confirm_review()
    shown = linked_decision()
    try:
        pending = client.decisions(status=[DecisionStatus.PENDING_APPROVAL], limit=100)
    except ApiError as exc:
        st.error(f"Could not load decisions: {exc}")
        return

    st.subheader(f"Waiting for approval ({pending['count']})")
    if not pending["data"]:
        st.info("Nothing is waiting for approval.")
    for decision in pending["data"]:
        if decision["decision_id"] == shown:
            continue
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
                    "link": f"/approvals?decision={d['decision_id']}",
                }
                for d in recent["data"]
            ],
            hide_index=True,
            width="stretch",
            key="recent_table",
            column_config={"link": st.column_config.LinkColumn("link", display_text="open")},
        )


live()
