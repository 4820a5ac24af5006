"""Incidents: a filtered, paginated list (refreshing itself) and the detail of one: the metric
chart (values, anomaly scores, the incident window shaded), evidence, root-cause hints, the
dependency graph around the service, policy decisions, alerts, the timeline, the linked
runbooks, Acknowledge / Resolve, and Approve / Reject of its pending decisions."""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.api_client import ApiClient, ApiError
from dashboard.live import live_fragment
from dashboard.reviews import confirm_review, replan_box, review_box
from dashboard.timefmt import ago, dot_id, plain, severity_badge, utc, web_link
from dashboard.timeline import collapse

STATUSES = ["open", "acknowledged", "resolved"]
SEVERITIES = ["critical", "error", "warning", "info"]
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
    search = st.text_input("Search titles", key="filter_text").strip()
page_no = st.number_input("Page", min_value=1, value=1, step=1, key="page")


def _linked_incident() -> int | None:
    """The incident the page shows: the one in the URL (`?incident=N`, a deep link that can be
    pasted into chat), chosen from the list or opened by a link."""
    value = st.query_params.get("incident")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        st.error(f"The link names incident {value!r}: not an incident number.")
        return None


STATUS_MARKS = {
    "open": ":red[● open]",
    "acknowledged": ":orange[◐ acknowledged]",
    "resolved": ":green[✓ resolved]",
}
COLUMNS = [1.1, 5, 1.8, 1.6, 1.8, 1.6]


def owner(incident: dict[str, Any]) -> str:
    """Who has it: who acknowledged (or resolved) it, or that nobody does yet."""
    if incident["status"] == "resolved":
        return incident["resolved_by"] or "—"
    return incident["acknowledged_by"] or ":gray[nobody yet]"


def open_incident(number: int) -> None:
    """Open it here and put it in the URL (`?incident=N`), the link to paste into chat. (A
    `st.page_link` to this same page would not update the browser's address.)"""
    st.query_params["incident"] = str(number)


def incident_rows(incidents: list[dict[str, Any]]) -> None:
    """The list, one row per incident; its title opens it."""
    header = st.columns(COLUMNS)
    for column, name in zip(
        header, ["Severity", "Incident", "Status", "Service", "Owner", "Opened"], strict=True
    ):
        column.markdown(f"**{name}**")
    for incident in incidents:
        number = incident["incident_id"]
        cells = st.columns(COLUMNS, vertical_alignment="center")
        cells[0].markdown(severity_badge(incident["severity"]))
        cells[1].button(  # keyed by the incident, not the row: a click opens what it shows
            f"#{number} {plain(incident['title'])}",
            key=f"open-incident-{number}",
            type="tertiary",
            on_click=open_incident,
            args=(number,),
        )
        cells[2].markdown(STATUS_MARKS.get(incident["status"], incident["status"]))
        cells[3].markdown(plain(incident["service"] or "—"))
        cells[4].markdown(owner(incident))
        cells[5].markdown(ago(incident["opened_at"]), help=utc(incident["opened_at"]))


def evidence_chart(points: list[dict[str, Any]], start: str, end: str, threshold: float) -> None:
    """The signal and its anomaly score, the incident window shaded and the threshold
    dashed, on one time axis in UTC (24-hour clock, like every time the console shows)."""
    frame = pd.DataFrame(points)
    frame["at"] = pd.to_datetime(frame["at"])
    window = pd.DataFrame({"start": [pd.to_datetime(start)], "end": [pd.to_datetime(end)]})
    utc = alt.Scale(type="utc")
    axis = alt.Axis(format="%H:%M", labelAngle=0)
    shade = (
        alt.Chart(window)
        .mark_rect(opacity=0.15, color="red")
        .encode(x=alt.X("start:T", scale=utc, axis=axis, title="UTC"), x2="end:T")
    )
    values = (
        alt.Chart(frame)
        .mark_line()
        .encode(x=alt.X("at:T", scale=utc, axis=axis, title="UTC"), y=alt.Y("value:Q"))
    )
    scores = (
        alt.Chart(frame)
        .mark_line(color="orange")
        .encode(
            x=alt.X("at:T", scale=utc, axis=axis, title="UTC"),
            y=alt.Y("score:Q", scale=alt.Scale(domain=[0, 1]), title="anomaly score"),
        )
    )
    limit = alt.Chart(pd.DataFrame({"t": [threshold]})).mark_rule(strokeDash=[4, 3]).encode(y="t:Q")
    st.altair_chart(
        alt.layer(shade, values).properties(height=180)
        & alt.layer(shade, scores, limit).properties(height=120),
        width="stretch",
    )


@live_fragment()
def live() -> None:
    """Everything below the filters refreshes itself; filters and selection stay."""
    try:
        listing = client.incidents(
            status=statuses,
            severity=severities,
            service=service or None,
            text=search or None,
            limit=PAGE_SIZE,
            offset=(int(page_no) - 1) * PAGE_SIZE,
            order="urgent",
        )
    except ApiError as exc:
        st.error(f"Could not load incidents: {exc}")
        return

    incidents: list[dict[str, Any]] = listing["data"]
    st.caption(f"{listing['count']} incident(s) match; showing {len(incidents)}.")
    if not incidents:
        st.info("No incidents match these filters.")
        return

    incident_rows(incidents)
    opened = _linked_incident()
    if opened is None:
        return
    done = st.session_state.get("incident_done")
    if done:
        st.success(done)
    try:
        detail = client.incident(opened)
    except ApiError as exc:
        st.error(f"Could not load incident #{opened}: {exc}")
        return

    st.subheader(f"#{detail['incident_id']} {plain(detail['title'])}")
    cols = st.columns(4)
    cols[0].metric("Status", detail["status"])
    cols[1].metric("Severity", detail["severity"])
    cols[2].metric("Service", detail["service"] or "-")
    cols[3].metric("Alerts", len(detail["alerts"]))

    allowed = role in CAN_ACT
    number = detail["incident_id"]
    comment_key = f"incident-comment-{number}"
    comment = st.text_input(
        f"Comment on #{number} (kept in the timeline)", key=comment_key, disabled=not allowed
    )
    left, right = st.columns(2)
    ack = left.button(
        f"Acknowledge #{number}",
        key="ack",
        disabled=not allowed or detail["status"] != "open",
        help=None if allowed else "Needs the operator role.",
    )
    res = right.button(
        f"Resolve #{number}",
        key="resolve",
        disabled=not allowed or detail["status"] == "resolved",
        help=None if allowed else "Needs the operator role.",
    )
    if ack or res:
        try:
            changed = (client.acknowledge if ack else client.resolve)(number, comment)
        except ApiError as exc:
            st.error(f"Refused: {exc}")
        else:
            who = changed.get("acknowledged_by" if ack else "resolved_by") or "you"
            st.session_state["incident_done"] = (
                f"#{number} ({plain(detail['title'])}) "
                f"{'acknowledged' if ack else 'resolved'} by {who}"
                + (f": \u201c{plain(comment.strip())}\u201d" if comment.strip() else "")
            )
            st.session_state.pop(comment_key, None)
            st.rerun()  # the same incident stays open: the next click cannot act on another

    if detail["status"] == "resolved":
        postmortem_buttons(number)

    outside = [
        f"[{label}]({detail['links'][key]})"
        for key, label in (("prometheus", "Prometheus graph"), ("grafana", "Grafana Explore"))
        if key in detail["links"]
    ]
    if outside:
        st.markdown("Evidence over the incident's time range: " + " · ".join(outside))

    st.markdown("#### Evidence")
    if not detail["evidence"]:
        st.caption("No evidence: this incident came from alerts, not from detection or forecasts.")
    window_end = detail["resolved_at"] or datetime.now(UTC).isoformat()
    for evidence in detail["evidence"]:
        data = evidence["data"]
        if evidence["kind"] == "anomaly" and data.get("points"):
            onset = evidence["onset_at"][:19].replace("T", " ")
            st.markdown(
                f"**{evidence['signal']}** ({data['detector']}), onset {onset}, "
                f"peak score {evidence['peak_score']:.2f}"
            )
            if data.get("why"):
                st.markdown(f"Why: {plain(data['why'])}")
            st.code(data["query"], language="promql")
            if evidence.get("graph_url"):
                st.link_button("Open in Prometheus", evidence["graph_url"])
            evidence_chart(data["points"], evidence["onset_at"], window_end, data["threshold"])
        elif evidence["kind"] == "capacity_forecast":
            crossing = data["crossing"]
            st.markdown(
                f"**{evidence['signal']}**: limit {crossing['limit']:g} {data.get('unit', '')}, "
                f"mean crosses {crossing['mean_at'] or '—'}, "
                f"risk date {crossing['risk_at'] or '—'}, "
                f"P = {100 * crossing['probability']:.0f}% "
                f"(report #{data['report_id']}, see Capacity)"
            )

    if detail["root_cause_hints"]:
        st.markdown("#### Root-cause hints")
        for hint in detail["root_cause_hints"]:  # whole reasons: a table would cut them off
            score = "—" if hint["score"] is None else f"{hint['score']:.2f}"
            st.markdown(
                f"{hint['rank']}. **{plain(hint['service'])}** · {plain(hint['signal'])} · onset "
                f"{utc(hint['onset_at'])} · score {score}  \n"
                + "; ".join(plain(r) for r in hint["reasons"])
            )

    if detail["service"]:
        try:
            edges = client.dependency_graph(minutes=60)
        except ApiError:
            edges = []
        near = [e for e in edges if detail["service"] in (e["caller"], e["callee"])]
        if near:
            st.markdown(f"#### Dependencies of {plain(detail['service'])} (last hour, from traces)")
            lines = [f'{dot_id(detail["service"])} [style=filled, fillcolor="#fcbba1"];']
            for e in near:  # service names come from spans: quoted and escaped
                color = "red" if e["errors"] else "gray"
                lines.append(
                    f"{dot_id(e['caller'])} -> {dot_id(e['callee'])} "
                    f'[label="{e["calls"]} calls, {e["errors"]} errors", color={color}];'
                )
            st.graphviz_chart("digraph {rankdir=LR; " + " ".join(lines) + "}")

    if detail["decisions"]:
        st.markdown("#### Policy decisions")
        st.dataframe(
            [
                {
                    "id": d["decision_id"],
                    "policy": d["policy"],
                    "status": d["status"],
                    "action": d["action"],
                    "target": d["target"],
                    "reason": d["reason"],
                    "link": f"/approvals?decision={d['decision_id']}",
                }
                for d in detail["decisions"]
            ],
            hide_index=True,
            width="stretch",
            column_config={"link": st.column_config.LinkColumn("link", display_text="open")},
        )
        confirm_review(detail["incident_id"])
        waiting = [d for d in detail["decisions"] if d["status"] == "pending_approval"]
        stale = [d for d in detail["decisions"] if d["status"] == "stale"]
        if waiting:
            paused = client.automation()["paused"]
            for decision in waiting:
                with st.container(border=True):
                    review_box(client, decision, role=role, paused=paused)
        if detail["status"] != "resolved":  # a resolved incident has nothing left to fix
            for decision in stale:
                with st.container(border=True):
                    replan_box(client, decision, role=role)

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
                "source": web_link(a["generator_url"]),
                "runbook": web_link(a["annotations"].get("runbook_url")),
            }
            for a in detail["alerts"]
        ],
        hide_index=True,
        width="stretch",
        key="alerts_table",
        column_config={
            "source": st.column_config.LinkColumn("source", display_text="graph"),
            "runbook": st.column_config.LinkColumn("runbook", display_text="runbook"),
        },
    )

    silences_section(detail, allowed)

    st.markdown("#### Timeline")
    kinds = sorted({e["kind"] for e in detail["timeline"]})
    shown = st.multiselect("Show", kinds, default=kinds, key=f"timeline-kinds-{number}")
    for line in collapse([e for e in detail["timeline"] if e["kind"] in shown]):
        entry = line.entry
        repeated = f" ×{line.count}, last {ago(line.last_at)}" if line.count > 1 else ""
        st.markdown(
            f"- `{utc(entry['at'])}` **{entry['kind']}** ({plain(entry['actor'])}): "
            f"{plain(entry['message'])}{repeated}"
        )

    if detail["runbooks"]:
        st.markdown("#### Runbooks")
        for name in detail["runbooks"]:
            with st.expander(f"Runbook: {name}"):
                try:
                    st.markdown(client.runbook(name)["markdown"])
                except ApiError as exc:
                    st.error(f"Could not load runbook {name}: {exc}")


def postmortem_buttons(number: int) -> None:
    """Download the postmortem draft (made when clicked: it draws the evidence charts)."""
    left, right = st.columns(2)
    for column, fmt, suffix, mime in (
        (left, "markdown", "md", "text/markdown"),
        (right, "html", "html", "text/html"),
    ):
        column.download_button(
            f"Postmortem draft #{number} ({suffix})",
            data=functools.partial(client.postmortem, number, fmt),
            file_name=f"postmortem-incident-{number}.{suffix}",
            mime=mime,
            key=f"postmortem-{suffix}-{number}",
            on_click="ignore",
        )


def silences_section(detail: dict[str, Any], allowed: bool) -> None:
    """The Alertmanager silences covering this incident, each with its own Expire button,
    and silencing it (its labels, for a chosen time, with a required comment)."""
    number = detail["incident_id"]
    st.markdown("#### Silences")
    try:
        covering = client.silences(number)
    except ApiError as exc:
        st.caption(f"Silences are not available: {exc}")
        return
    if not covering:
        st.caption("No Alertmanager silence covers this incident.")
    for silence in covering:
        sid = silence["silence_id"]
        matchers = ", ".join(f"{m['name']}={m['value']}" for m in silence["matchers"])
        left, right = st.columns([4, 1])
        left.markdown(
            f"`{sid[:8]}` {silence['state']} until {utc(silence['ends_at'])} · by "
            f"{plain(silence['created_by'])} · {plain(matchers)}  \n{plain(silence['comment'])}"
        )
        if right.button(f"Expire {sid[:8]}", key=f"expire-{sid}", disabled=not allowed):
            try:
                client.expire_silence(sid)
            except ApiError as exc:
                st.error(f"Refused: {exc}")
            else:
                st.session_state["incident_done"] = f"Silence {sid[:8]} expired"
                st.rerun()
    if detail["status"] == "resolved":
        return
    minutes = st.number_input(
        "Silence for (minutes)", 5, 7 * 24 * 60, 60, step=15, key=f"silence-minutes-{number}"
    )
    comment_key = f"silence-comment-{number}"
    why = st.text_input(
        "Why silence it? (required, kept in Alertmanager with your name)",
        key=comment_key,
        disabled=not allowed,
    )
    if st.button(f"Silence #{number}", key=f"silence-{number}", disabled=not allowed):
        if not why.strip():
            st.error(f"A comment is required to silence #{number}.")
            return
        try:
            made = client.silence(number, float(minutes), why.strip())
        except ApiError as exc:
            st.error(f"Refused: {exc}")
            return
        st.session_state["incident_done"] = (
            f"#{number} silenced until {utc(made['ends_at'])} (silence {made['silence_id'][:8]})"
        )
        st.session_state.pop(comment_key, None)
        st.rerun()


live()
