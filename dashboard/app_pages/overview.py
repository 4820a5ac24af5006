"""Overview: what needs a human first (open incidents nobody acknowledged, most severe and
oldest first, each linked; approvals waiting; recent automated actions), then open incidents
by severity and service, SLO burn, actions in the last 24 h, the kill switch, and the health
of the control plane and its sources. Refreshes itself. Times are relative, with UTC beside."""

from __future__ import annotations

import streamlit as st

from controlplane.domain.models import DecisionStatus
from dashboard.api_client import ApiClient, ApiError
from dashboard.live import live_fragment
from dashboard.timefmt import ago, plain, severity_badge, utc

SEVERITIES = ["critical", "error", "warning", "info"]
NEEDS_A_HUMAN = 10
RECENT_ACTIONS = 5
EXECUTED = [s.value for s in DecisionStatus if s.executed]
client = ApiClient(st.session_state["token"])

st.title("Overview")


def link_to_incident(incident_id: int, label: str, caption: str) -> None:
    """A link that opens the incident (its deep link), and a line about it."""
    st.page_link("app_pages/incidents.py", label=label, query_params={"incident": str(incident_id)})
    st.caption(caption)


def on_fire() -> None:
    """What needs a human first: open incidents nobody acknowledged (most severe, then
    waiting longest), approvals waiting, and what automation did lately."""
    try:
        waiting = client.incidents(status=["open"], order="urgent", limit=NEEDS_A_HUMAN)
        pending = client.decisions(status=["pending_approval"], limit=NEEDS_A_HUMAN)
        recent = client.decisions(status=EXECUTED, limit=RECENT_ACTIONS)
    except ApiError as exc:
        st.error(f"Could not load what needs a human: {exc}")
        return
    st.subheader(f"Needs a human ({waiting['count']} open, not acknowledged)")
    if not waiting["data"]:
        st.success("No open incident is waiting for anyone.")
    for incident in waiting["data"]:
        link_to_incident(
            incident["incident_id"],
            f"#{incident['incident_id']} {plain(incident['title'])}",
            f"{severity_badge(incident['severity'])} {plain(incident['service'] or '-')} · opened "
            f"{ago(incident['opened_at'])} ({utc(incident['opened_at'])})",
        )
    left, right = st.columns(2)
    with left:
        st.subheader(f"Approvals waiting ({pending['count']})")
        if not pending["data"]:
            st.caption("Nothing is waiting for approval.")
        for decision in pending["data"]:
            st.page_link(  # the decision's own link: its plan, diff and buttons
                "app_pages/approvals.py",
                label=f"#{decision['decision_id']} {decision['policy']} on {decision['target']}",
                query_params={"decision": str(decision["decision_id"])},
            )
            st.caption(
                f"incident #{decision['incident_id']} · waiting {ago(decision['created_at'])} "
                f"({utc(decision['created_at'])})",
            )
    with right:
        st.subheader("Recent automated actions")
        if not recent["data"]:
            st.caption("No action has run yet.")
        for decision in recent["data"]:
            when = decision["finished_at"] or decision["started_at"]
            st.markdown(
                f"**{decision['status'].replace('_', ' ')}** · {decision['policy']} on "
                f"`{decision['target']}` · {ago(when)}"
            )
            st.caption(plain(decision["reason"]))


@live_fragment()
def live() -> None:
    try:
        data = client.overview()
    except ApiError as exc:
        st.error(f"Could not load the overview: {exc}")
        return
    incidents = data["incidents"]
    if data["automation"]["paused"]:
        st.warning(
            f"Automation is **paused** by {data['automation']['changed_by']}"
            + (f": {data['automation']['reason']}" if data["automation"]["reason"] else "")
        )
    cols = st.columns(len(SEVERITIES) + 1)
    cols[0].metric("Open incidents", incidents["open"])
    for col, severity in zip(cols[1:], SEVERITIES, strict=True):
        col.metric(severity.capitalize(), incidents["by_severity"].get(severity, 0))
    on_fire()

    left, right = st.columns(2)
    with left:
        st.subheader("Open incidents by service")
        if incidents["by_service"]:
            st.bar_chart(
                {r["service"]: r["open"] for r in incidents["by_service"]}, horizontal=True
            )
        else:
            st.info("No open incidents.")
    with right:
        st.subheader("Actions in the last 24 h")
        actions = data["actions_24h"]
        if actions:
            st.dataframe(
                [{"status": k, "decisions": v} for k, v in sorted(actions.items())],
                hide_index=True,
                width="stretch",
            )
        else:
            st.info("No policy decisions in the last 24 hours.")
        st.metric("Automation", "paused" if data["automation"]["paused"] else "on")

    st.subheader("SLO burn")
    if data["slo_burn"]:
        st.dataframe(data["slo_burn"], hide_index=True, width="stretch")
    else:
        st.caption("No SLO burn-rate signals configured (detector `slo_burn_rate`).")

    st.subheader("Sources")
    prometheus = data["prometheus"]
    failing = [s for s in data["signals"] if s["last_error"]]
    if not prometheus["configured"]:
        st.caption("Prometheus: not configured.")
    elif not prometheus["reachable"]:
        st.error(f"Prometheus: unreachable ({prometheus['detail']}).")
    elif failing:  # reachable, yet the signals fail: say that, not "all good"
        st.warning(
            f"Prometheus: reachable, but {len(failing)} of {len(data['signals'])} signal(s) "
            f"fail: {failing[0]['signal']}: {failing[0]['last_error']}"
        )
    else:
        st.success("Prometheus: reachable.")
    if data["signals"]:
        st.dataframe(
            [
                {
                    "signal": s["signal"],
                    "service": s["service"],
                    "status": s["status"].replace("_", " "),
                    "last successful collection": s["last_success_at"] or "never",
                    "error": s["last_error"] or "",
                }
                for s in data["signals"]
            ],
            hide_index=True,
            width="stretch",
        )
    else:
        st.caption("No detection signals configured.")
    report = data["capacity"]
    if report:
        st.caption(
            f"Latest capacity report #{report['report_id']} ({report['status']}, "
            f"{report['created_at'][:16].replace('T', ' ')}): {report['at_risk']} of "
            f"{report['signals']} signals at risk."
        )
    st.caption(f"Updated {data['generated_at'][11:19]} UTC.")


live()
