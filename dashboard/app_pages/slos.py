"""SLOs: each objective's error budget left and burn rates, the burn-rate alerts that hold
now (SRE workbook pairs), and the budget over the last days."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.api_client import ApiClient, ApiError
from dashboard.loading import load_or_stop

client = ApiClient(st.session_state["token"])
st.title("SLOs")
evaluated = load_or_stop("SLOs", client.slos)
if not evaluated:
    st.info("No SLOs configured (`slos:` in the settings; `aiops slo import` reads OpenSLO).")
    st.stop()

BADGE = {
    "ok": ":green-badge[ok]",
    "burning": ":orange-badge[burning]",
    "exhausted": ":red-badge[budget exhausted]",
    "no_data": ":gray-badge[no data]",
}


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


for slo in evaluated:
    with st.container(border=True):
        st.markdown(
            f"**{slo['name']}** ({slo['service']}) {BADGE[slo['status']]} · objective "
            f"{100 * slo['objective']:g}% over {slo['window']}"
            + (f"  \n{slo['description']}" if slo["description"] else "")
        )
        cols = st.columns(4)
        cols[0].metric("Error budget left", percent(slo["budget_remaining"]))
        for col, window in zip(cols[1:], ("1h", "6h", "3d"), strict=True):
            rate = slo["burn_rates"][window]
            col.metric(f"Burn rate {window}", "-" if rate is None else f"{rate:.1f}x")
        for alert in slo["alerts"]:
            st.error(
                f"{alert['severity']}: burning {alert['burn_rate']:g}x too fast over "
                f"{alert['long']} and {alert['short']}"
            )

names = [s["name"] for s in evaluated]
chosen = st.selectbox("Budget over time", names, key="slo_chart")
days = st.slider("Days", 1, 30, 7, key="slo_days")
try:
    series = client.slo_budget(chosen, days)
except ApiError as exc:
    st.error(f"Could not load the budget of {chosen}: {exc}")
else:
    if series["points"]:
        frame = pd.DataFrame(series["points"])
        frame["at"] = pd.to_datetime(frame["at"])
        st.line_chart(frame, x="at", y="remaining", x_label="UTC", y_label="budget left (1 = all)")
    else:
        st.caption("No data for this SLO in that range.")
