"""Reviewing a decision, wherever the console shows one (the Approvals page, its deep link
`?decision=N`, the incident it belongs to): its plan, diff and guardrails, its own comment
box, and its own Approve #N / Reject #N (or, for a stale one, Plan #N again), so a click can
only act on the decision around it. A review sends the plan's digest as it was shown: if
the decision was planned again in between, the API refuses instead of approving it unread."""

from __future__ import annotations

from typing import Any, NoReturn

import streamlit as st

from dashboard.api_client import ApiClient, ApiError
from dashboard.timefmt import plain

CAN_REVIEW = {"operator", "admin"}


def comment_box(label: str, key: str, allowed: bool) -> str:
    """The decision's own comment box (its key names the decision)."""
    return st.text_input(
        label, key=key, disabled=not allowed, help=None if allowed else "Needs the operator role."
    )


def summary(decision: dict[str, Any]) -> str:
    return str(decision["plan"]["summary"] if decision["plan"] else decision["action"])


def describe(decision: dict[str, Any]) -> None:
    """What the decision is: its policy, action, target and plan."""
    number = decision["decision_id"]
    st.markdown(f"**#{number} · {decision['policy']}**: {summary(decision)}")
    st.markdown(
        f"Incident **#{decision['incident_id']}** · action `{decision['action']}` on "
        f"`{decision['target']}` · policy version `{decision['policy_version']}`, "
        f"mode {decision['mode']} · planned {decision['created_at'][:19].replace('T', ' ')} UTC"
        f" · link: `?decision={number}` on Approvals"
    )
    if decision["plan"]:
        st.code(decision["plan"]["diff"] or "(no change)", language="diff")


def review_box(
    client: ApiClient,
    decision: dict[str, Any],
    *,
    role: str,
    paused: bool,
    link: str | None = None,
) -> None:
    """One pending decision with its own comment and buttons: a click can only act on the
    decision shown around it, and its comment belongs to it alone. With `link` (a signed
    approval link from a message) the review goes through the link: it approves the plan the
    message showed, and only once."""
    number = decision["decision_id"]
    what = summary(decision)
    describe(decision)
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
    comment_key = f"review-comment-{number}"
    comment = comment_box(f"Comment on #{number} (required)", comment_key, allowed)
    left, right = st.columns(2)
    approve = left.button(
        f"Approve #{number}",
        key=f"approve-{number}",
        type="primary",
        disabled=not allowed or paused,
    )
    reject = right.button(f"Reject #{number}", key=f"reject-{number}", disabled=not allowed)
    if paused and allowed:
        st.caption("Automation is paused: approving waits until it is resumed.")
    if not (approve or reject):
        return
    if not comment.strip():
        st.error(f"A comment is required to {'approve' if approve else 'reject'} #{number}.")
        return
    try:
        if link is not None:
            reviewed = client.review_link(link, approve=approve, comment=comment.strip())
        else:
            reviewed = client.review(
                number,
                approve=approve,
                comment=comment.strip(),
                plan_digest=decision["plan_digest"],
            )
    except ApiError as exc:
        st.error(f"#{number} refused: {exc}")
        return
    done(
        decision,
        comment_key,
        f"#{number} ({decision['policy']}: {what}) {reviewed['status']} by "
        f"{reviewed['reviewed_by']}: \u201c{plain(reviewed['review_comment'])}\u201d",
    )


def replan_box(client: ApiClient, decision: dict[str, Any], *, role: str) -> None:
    """A stale decision: why it cannot be approved as it is, and Plan #N again (a fresh
    read of the target, every guardrail again, then a new approval)."""
    number = decision["decision_id"]
    describe(decision)
    st.warning(f"#{number} is stale: {plain(decision['reason'])}")
    allowed = role in CAN_REVIEW
    comment_key = f"replan-comment-{number}"
    comment = comment_box(f"Why plan #{number} again? (required)", comment_key, allowed)
    if not st.button(f"Plan #{number} again", key=f"replan-{number}", disabled=not allowed):
        return
    if not comment.strip():
        st.error(f"A comment is required to plan #{number} again.")
        return
    try:
        asked = client.replan(number, comment.strip())
    except ApiError as exc:
        st.error(f"#{number} refused: {exc}")
        return
    done(
        decision,
        comment_key,
        f"#{number} ({decision['policy']}): {plain(asked['reason'])}; the policy loop makes "
        "the new plan in a few seconds, then it waits for approval again",
    )


def done(decision: dict[str, Any], comment_key: str, text: str) -> NoReturn:
    """After an action on a decision: keep what was done for `confirm_review`, clear the
    comment, and run the page again (the same decision stays where it was)."""
    st.session_state["review_done"] = {"incident_id": decision["incident_id"], "text": text}
    st.session_state.pop(comment_key, None)
    st.rerun()


def confirm_review(incident_id: int | None = None) -> None:
    """Say what the last review did (on an incident's page: only if it was about that one)."""
    done = st.session_state.get("review_done")
    if done and (incident_id is None or done["incident_id"] == incident_id):
        st.success(done["text"])
