"""On-call: maintenance windows (open ones first; open one, cancel one) and notifications
(each channel's health, a failing one first and why; recent messages; send a failed one
again once its channel is fixed)."""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st

from dashboard.api_client import ApiClient, ApiError
from dashboard.loading import load_or_stop
from dashboard.timefmt import plain, utc

client = ApiClient(st.session_state["token"])
role = st.session_state["user"]["role"]
allowed = role in ("operator", "admin")
NEEDS = None if allowed else "Needs the operator role."

st.title("On-call")
done = st.session_state.pop("oncall_done", None)
if done:
    st.success(done)

st.subheader("Maintenance windows")
windows = load_or_stop("maintenance windows", client.windows)
open_now = [w for w in windows if w["open_now"]]
if not open_now:
    st.caption("No maintenance window is open now.")
for w in open_now:
    scope = " · ".join(
        part
        for part in (
            f"service {w['service']}" if w["service"] else "",
            f"namespace {w['namespace']}" if w["namespace"] else "",
        )
        if part
    )
    left, right = st.columns([4, 1])
    left.markdown(
        f"**#{w['window_id']} {plain(w['name'])}** ({scope or 'everything'}) · until "
        f"{utc(w['ends_at']) if w['ends_at'] else 'no end'}"
        + (f" · recurs `{w['recurrence']}`" if w["recurrence"] else "")
        + f" · paging {'muted' if w['mute_paging'] else 'on'} · automation at most "
        f"**{w['automation'] or 'as the policy says'}** · by {plain(w['created_by'])} "
        f"({w['source']}): {plain(w['reason'])}"
    )
    reason = right.text_input(
        f"Why close #{w['window_id']}?", key=f"cancel-reason-{w['window_id']}", disabled=not allowed
    )
    if right.button(
        f"Close #{w['window_id']}", key=f"cancel-{w['window_id']}", disabled=not allowed, help=NEEDS
    ):
        if not reason.strip():
            st.error(f"A reason is required to close #{w['window_id']}.")
        else:
            try:
                client.cancel_window(w["window_id"], reason.strip())
            except ApiError as exc:
                st.error(f"Refused: {exc}")
            else:
                st.session_state["oncall_done"] = f"Window #{w['window_id']} closed"
                st.rerun()

with st.expander("Open a maintenance window", expanded=False):
    name = st.text_input("Name", key="window_name", disabled=not allowed)
    service = st.text_input("Service (empty: every service)", key="window_service")
    namespace = st.text_input("Namespace (empty: every namespace)", key="window_namespace")
    recurring = st.toggle("Recurring", key="window_recurring")
    if recurring:
        recurrence = st.text_input("Opens at (cron, UTC)", "0 2 * * sun", key="window_cron")
    day = st.date_input("Starts (UTC)", datetime.now(UTC).date(), key="window_day")
    at = st.time_input("at", datetime.now(UTC).time().replace(microsecond=0), key="window_time")
    minutes = st.number_input("Lasts (minutes)", 5, 30 * 24 * 60, 60, step=15, key="window_len")
    automation = st.selectbox(
        "Automation inside it, at most",
        ["approval", "dry_run", "off", "as the policy says"],
        key="window_automation",
    )
    mute = st.checkbox("Mute paging (incidents are still recorded)", True, key="window_mute")
    why = st.text_input("Why? (required, audited)", key="window_reason", disabled=not allowed)
    if st.button("Open window", key="window_open", disabled=not allowed, help=NEEDS):
        starts = datetime.combine(day, at if isinstance(at, time) else time(), tzinfo=UTC)
        body = {
            "name": name.strip(),
            "service": service.strip() or None,
            "namespace": namespace.strip() or None,
            "starts_at": starts.isoformat(),
            "duration_minutes": float(minutes),
            "automation": None if automation == "as the policy says" else automation,
            "mute_paging": mute,
            "reason": why.strip(),
        }
        if recurring:
            body["recurrence"] = recurrence.strip()
        try:
            made = client.open_window(body)
        except ApiError as exc:
            st.error(f"Refused: {exc}")
        else:
            for key in ("window_name", "window_reason"):
                st.session_state.pop(key, None)
            st.session_state["oncall_done"] = (
                f"Window #{made['window_id']} {made['name']!r} opened"
                + (" (open now)" if made["open_now"] else "")
            )
            st.rerun()

st.subheader("Notification channels")
channels = load_or_stop("notification channels", client.channels)
if not channels:
    st.caption("No notifications file is configured (notifications.file): nobody is told.")
for channel in sorted(channels, key=lambda c: not c["failing"]):
    if channel["failing"]:
        st.error(
            f"**{channel['channel']}** ({channel['type'] or 'no longer configured'}) fails for "
            f"good: {plain(channel['last_error'] or '')}. Fix it, then send its failed "
            "messages again below."
        )
st.dataframe(
    [
        {
            "channel": c["channel"],
            "type": c["type"] or "(removed)",
            "failing": c["failing"],
            **{s: c["counts"].get(s, 0) for s in ("sent", "pending", "failed", "muted")},
        }
        for c in channels
    ],
    hide_index=True,
    width="stretch",
    key="channels",
)

st.subheader("Recent messages")
status = st.selectbox("Status", ["all", "failed", "pending", "sent", "muted"], key="msg_status")
recent = load_or_stop(
    "messages", lambda: client.messages(status=None if status == "all" else status)
)
st.dataframe(
    [
        {
            "id": m["message_id"],
            "channel": m["channel"],
            "route": m["route"],
            "event": m["event_type"] + (f" ×{len(m['events'])}" if len(m["events"]) > 1 else ""),
            "incident": m["incident_id"],
            "status": m["status"],
            "attempts": m["attempts"],
            "created": utc(m["created_at"]),
            "why": m["last_error"] or m["receipt"] or "",
        }
        for m in recent["data"]
    ],
    hide_index=True,
    width="stretch",
    key="messages",
)
failed = [m for m in recent["data"] if m["status"] == "failed"]
for message in failed[:10]:
    number = message["message_id"]
    if st.button(
        f"Send #{number} again ({message['channel']}, {message['event_type']})",
        key=f"retry-{number}",
        disabled=not allowed,
        help=NEEDS,
    ):
        try:
            client.retry_message(number)
        except ApiError as exc:
            st.error(f"Refused: {exc}")
        else:
            st.session_state["oncall_done"] = f"Message #{number} queued again"
            st.rerun()
