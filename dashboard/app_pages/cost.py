"""Cost: what automated scaling added to spend, against each budget (this hour, and this
month to its end), and the decisions that carry a cost, refused ones included."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from dashboard.api_client import ApiClient
from dashboard.loading import load_or_stop

client = ApiClient(st.session_state["token"])
st.title("Cost")
view = load_or_stop("the cost view", client.cost)
money = view["currency"]
prices = view["prices"]
where = "from OpenCost" if prices["source"] == "opencost" else "from the settings"
st.caption(
    f"Prices {where}: {prices['cpu_core_hour']:.4g} {money} a core-hour, "
    f"{prices['memory_gib_hour']:.4g} {money} a GiB-hour."
)
if prices["error"]:
    kept = "its last prices" if prices["source"] == "opencost" else "the settings' prices"
    st.warning(f"OpenCost could not be read just now, so {kept} are used: {prices['error']}")

if not view["budgets"]:
    st.info("No budgets configured (`cost.budgets`): automated scaling is not capped by cost.")
for budget in view["budgets"]:
    scope = (
        " · ".join(f"{k} {budget[k]}" for k in ("namespace", "workload") if budget[k])
        or "everything"
    )
    with st.container(border=True):
        st.markdown(f"**{budget['name']}** ({scope}) · past a cap: {budget['over']}")
        cols = st.columns(2)
        for col, (label, used, cap) in zip(
            cols,
            (
                ("Added in the last hour", budget["added_last_hour"], budget["per_hour"]),
                ("Added this month", budget["added_this_month"], budget["per_month"]),
            ),
            strict=True,
        ):
            shown = f"{used:.2f} {money}" + (f" of {cap:g}" if cap is not None else "")
            col.metric(label, shown)
            if cap:
                col.progress(min(1.0, used / cap))

st.subheader("Decisions with a cost")
decisions = view["decisions"]
if not decisions:
    st.caption("No decision has been priced yet (set cost prices and a scale policy).")
else:
    frame = pd.DataFrame(decisions)
    st.bar_chart(frame, x="decision_id", y="per_hour", x_label="decision",
                 y_label=f"{money} per hour added")  # fmt: skip
    made = frame[frame["counts"]]
    if not made.empty:
        made = made.assign(at=pd.to_datetime(made["created_at"])).sort_values("at")
        made = made.assign(added=made["per_hour"].cumsum())
        st.caption(f"What automation's changes add per hour, {money}, over time (the "
                   "decisions the budgets count: acting or waiting for a yes).")  # fmt: skip
        st.line_chart(made, x="at", y="added", x_label="decided at (UTC)",
                      y_label=f"{money} per hour added")  # fmt: skip
    st.dataframe(
        [{**d, "link": f"/approvals?decision={d['decision_id']}"} for d in decisions],
        hide_index=True,
        width="stretch",
        key="cost_decisions",
        column_config={"link": st.column_config.LinkColumn("link", display_text="open")},
    )
