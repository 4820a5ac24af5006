"""Capacity: forecasts with their bands, limit and crossing date per signal; the report
history with downloads; "generate now" for operators."""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import streamlit as st

from dashboard.api_client import ApiClient, ApiError
from dashboard.live import live_fragment
from dashboard.loading import load_or_stop

CAN_GENERATE = {"operator", "admin"}
client = ApiClient(st.session_state["token"])
role = st.session_state["user"]["role"]

#: Colours of the chart's series, also its legend.
SERIES = {
    "history": "#7f7f7f",
    "forecast": "#08519c",
    "80% band": "#6baed6",
    "95% band": "#c6dbef",
    "limit": "#cb181d",
}


def forecast_chart(outlook: dict[str, Any]) -> alt.LayerChart | alt.FacetChart:
    """History, forecast and its bands against the limit, with "now" and the crossing dates
    marked, a legend, dates on the axis, all in UTC, the y-axis fitted to the data."""
    forecast = pd.DataFrame(outlook["forecast"])
    forecast["timestamp"] = pd.to_datetime(forecast["timestamps"])
    past = pd.DataFrame(outlook.get("history") or {"timestamps": [], "values": []})
    past["timestamp"] = pd.to_datetime(past["timestamps"])
    x = alt.X(
        "timestamp:T",
        title="UTC",
        scale=alt.Scale(type="utc"),
        axis=alt.Axis(format="%b %d", labelAngle=0, tickCount="day"),
    )
    colour = alt.Color(
        "series:N",
        scale=alt.Scale(domain=list(SERIES), range=list(SERIES.values())),
        legend=alt.Legend(title=None, orient="top"),
    )
    unit = outlook["unit"] or "value"
    fitted = alt.Scale(zero=False)

    def series(name: str, chart: alt.Chart) -> alt.Chart:
        return chart.transform_calculate(series=f"'{name}'").encode(color=colour)

    base = alt.Chart(forecast).encode(x=x)
    layers = [
        series("95% band", base.mark_area(opacity=0.6)).encode(
            y=alt.Y("lo-95:Q", title=unit, scale=fitted), y2="hi-95:Q"
        ),
        series("80% band", base.mark_area(opacity=0.6)).encode(y="lo-80:Q", y2="hi-80:Q"),
        series("forecast", base.mark_line()).encode(y="mean:Q"),
        series(
            "limit",
            alt.Chart(pd.DataFrame({"limit": [outlook["limit"]]})).mark_rule(strokeDash=[6, 3]),
        ).encode(y="limit:Q"),
    ]
    if len(past):
        layers.insert(0, series("history", alt.Chart(past).mark_line()).encode(x=x, y="values:Q"))
    start = forecast["timestamp"].min()
    marks = [("now", start)]
    crossing = outlook["crossing"]
    for name, at in (("mean crosses", crossing["mean_at"]), ("risk date", crossing["risk_at"])):
        if at:
            marks.append((name, pd.to_datetime(at)))
    when = pd.DataFrame({"timestamp": [t for _, t in marks], "label": [n for n, _ in marks]})
    rules = alt.Chart(when).encode(x=x)
    layers += [
        rules.mark_rule(color="black", strokeDash=[2, 2]),
        rules.mark_text(align="left", dx=3, dy=-5, baseline="bottom").encode(
            text="label:N", y=alt.value(0)
        ),
    ]
    return alt.layer(*layers)


st.title("Capacity")
allowed = role in CAN_GENERATE
if st.button(
    "Generate a report now",
    key="generate",
    disabled=not allowed,
    help=None if allowed else "Needs the operator role.",
):
    try:
        created = client.create_report()
    except ApiError as exc:
        st.error(f"Refused: {exc}")
    else:
        st.session_state["generating"] = created["report_id"]


@live_fragment(every=2)
def watch_generation() -> None:
    """While a report asked for here is being produced: say so; once done, open it."""
    number = st.session_state.get("generating")
    if number is None:
        return
    try:
        status = client.report(int(number))["status"]
    except ApiError as exc:
        st.error(f"Could not follow report #{number}: {exc}")
        return
    if status == "running":
        st.info(f"Report #{number} is being produced; it opens here when it is ready.")
        return
    st.session_state.pop("generating")
    if status == "done":
        st.session_state["report_choice"] = number
        st.toast(f"Report #{number} is ready.")
    else:
        st.session_state["generation_failed"] = f"Report #{number} {status}."
    st.rerun()


watch_generation()
if "generation_failed" in st.session_state:
    st.error(st.session_state.pop("generation_failed"))

history = load_or_stop("reports", lambda: client.reports("capacity", limit=20))
if not history["data"]:
    st.info("No capacity report yet. Configure capacity.signals and generate one.")
    st.stop()

st.subheader("Report history")
st.dataframe(
    [
        {
            "id": r["report_id"],
            "created": r["created_at"][:16].replace("T", " "),
            "status": r["status"],
            "trigger": r["trigger"],
            "by": r["requested_by"],
            "signals": r["signals"],
            "at risk": r["at_risk"],
            "error": r["error"] or "",
        }
        for r in history["data"]
    ],
    hide_index=True,
    width="stretch",
)
done = [r for r in history["data"] if r["status"] == "done"]
if not done:
    st.info("No finished report yet.")
    st.stop()
report_id = st.selectbox(
    "Report", [r["report_id"] for r in done], key="report_choice", format_func=lambda i: f"#{i}"
)
document: dict[str, Any] = load_or_stop(
    f"report #{report_id}", lambda: client.report(int(report_id))
)["document"]

with st.container(horizontal=True):
    for fmt, mime, ext in (("html", "text/html", "html"), ("markdown", "text/markdown", "md")):
        try:
            text = client.report_text(int(report_id), fmt)
        except ApiError as exc:
            st.error(f"Could not load the {fmt} report: {exc}")
            continue
        st.download_button(
            f"Download {ext.upper()}",
            text,
            file_name=f"report-{report_id}.{ext}",
            mime=mime,
            key=f"download_{fmt}",
        )

st.subheader(f"Report #{report_id}: {document['at_risk']} of {document['signals']} at risk")
for outlook in document["outlooks"]:
    title = f"{outlook['service']} / {outlook['signal']}"
    if outlook["error"]:
        st.error(f"{title}: no forecast: {outlook['error']}")
        continue
    crossing, model = outlook["crossing"], outlook["model"]
    label = f"{title}: limit {outlook['limit']:g} {outlook['unit']}"
    if crossing["at_risk"]:
        label += " (at risk)"
    icon = ":material/warning:" if crossing["at_risk"] else ":material/check_circle:"
    with st.expander(label, expanded=crossing["at_risk"], icon=icon):
        cols = st.columns(4)
        cols[0].metric("Mean crosses (UTC)", (crossing["mean_at"] or "—")[5:16].replace("T", " "))
        cols[1].metric("Risk date (UTC)", (crossing["risk_at"] or "—")[5:16].replace("T", " "))
        cols[2].metric("P(cross in lead)", f"{100 * crossing['probability']:.0f}%")
        backtest = model["backtest"]
        relative = backtest.get("relative_mase") if backtest else None
        cols[3].metric(
            "Model (error / naive's)",
            f"{model['model']} ({relative:.2f}x)" if relative is not None else model["model"],
        )
        st.altair_chart(forecast_chart(outlook), width="stretch")
        # The forecast's own accuracy beside it: how it did against seasonal naive on this
        # series' history, and how often its bands held what came.
        if model.get("accuracy"):
            st.caption(f"Accuracy: {model['accuracy']}.")
        for note in (model.get("guard"), model.get("fallback")):
            if note:
                st.caption(note)
        if model.get("weights"):
            parts = ", ".join(f"{k} {v:.2f}" for k, v in model["weights"].items())
            st.caption(f"Blend of: {parts}.")
        if outlook["replicas"]:
            r = outlook["replicas"]
            st.caption(
                f"Replicas: {r['current']} now → {r['needed']} needed for the {r['plan_for']} peak "
                f"of {r['peak_load']:.4g} (headroom now {100 * r['headroom_now']:.0f}%, at peak "
                f"{100 * r['headroom_at_peak']:.0f}%)."
            )
        if outlook.get("cost"):
            c, money = outlook["cost"], outlook["cost"]["currency"]
            st.caption(
                f"Cost: {c['now_per_hour']:.2f} {money}/h now → {c['needed_per_hour']:.2f} "
                f"{money}/h recommended ({c['added_per_month']:+.0f} {money} a month)."
            )
