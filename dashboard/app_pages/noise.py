"""Noise: is alerting telling people things they act on? Incidents per service per week,
alerts nobody acknowledged or acted on (candidates to delete), flapping incidents, time to
acknowledge and resolve, and automation's share of resolutions; and the scheduled weekly
reports, to download."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from dashboard.api_client import ApiClient
from dashboard.loading import load_or_stop

client = ApiClient(st.session_state["token"])
st.title("Noise")
days = st.selectbox("Incidents opened in the last", [7, 14, 28, 90], key="noise_days",
                    format_func=lambda d: f"{d} days")  # fmt: skip
until = datetime.now(UTC)
noise = load_or_stop(
    "the noise report",
    lambda: client.noise(since=(until - timedelta(days=days)).isoformat(), until=until.isoformat()),
)


def minutes(stats: dict[str, float | None]) -> str:
    median = stats["median"]
    return "-" if median is None else f"{median / 60:.0f} min (p90 {(stats['p90'] or 0) / 60:.0f})"


share = noise["automation_share"]
cols = st.columns(5)
cols[0].metric("Incidents", noise["incidents"])
cols[1].metric("Alerts per incident (median)", noise["alerts_per_incident"]["median"] or 0)
cols[2].metric("Time to acknowledge", minutes(noise["time_to_acknowledge_seconds"]))
cols[3].metric("Time to resolve", minutes(noise["time_to_resolve_seconds"]))
cols[4].metric(
    "Fixed by automation",
    "-" if share["share"] is None else f"{100 * share['share']:.0f}%",
    help=f"{share['after_an_automated_fix']} of {share['resolved']} resolved incidents had an "
    "action that succeeded before they resolved.",
)

st.subheader("Incidents per service per week")
weeks = noise["incidents_per_service_per_week"]
if weeks:
    frame = pd.DataFrame(weeks).fillna(0).astype(int)
    frame.index.name = "week of"
    st.bar_chart(frame, x_label="week (Monday)", y_label="incidents")
else:
    st.caption("No incident in this range.")

st.subheader("Alerts nobody acted on")
st.caption(
    "Every incident of these alerts resolved by itself, was never acknowledged, and no policy "
    "acted on it: candidates to delete, demote or route elsewhere."
)
st.dataframe(noise["never_acted_on"], hide_index=True, width="stretch", key="noise_never")

st.subheader("Flapping incidents")
st.dataframe(
    [{**f, "link": f"/incidents?incident={f['incident_id']}"} for f in noise["flapping"]],
    hide_index=True,
    width="stretch",
    key="noise_flapping",
    column_config={"link": st.column_config.LinkColumn("link", display_text="open")},
)

st.subheader("Weekly reports")
stored = load_or_stop("noise reports", lambda: client.reports("noise", limit=12))["data"]
finished = [r for r in stored if r["status"] == "done"]
if not finished:
    st.caption("None yet: set noise.schedule (e.g. '0 7 * * 1', Mondays 07:00 UTC).")
for r in finished:
    number = r["report_id"]
    row = st.columns([3, 1, 1])
    row[0].write(
        f"#{number} of {r['created_at'][:10]}: {r['signals']} incidents, "
        f"{r['at_risk']} alerts nobody acted on"
    )
    for col, fmt, ext, mime in ((row[1], "html", "html", "text/html"),
                                (row[2], "markdown", "md", "text/markdown")):  # fmt: skip
        col.download_button(
            ext.upper(),
            data=functools.partial(client.report_text, number, fmt),
            file_name=f"noise-report-{number}.{ext}",
            mime=mime,
            key=f"noise_{number}_{ext}",
            on_click="ignore",
        )
