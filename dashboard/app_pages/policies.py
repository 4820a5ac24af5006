"""Policies and runbooks: the loaded policies (or why they failed to load), runbooks
rendered, and the policy backtest with its results."""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st
import yaml

from dashboard.api_client import ApiClient, ApiError
from dashboard.loading import load_or_stop

client = ApiClient(st.session_state["token"])

st.title("Policies and runbooks")
loaded = load_or_stop("policies", client.policies)

st.subheader("Policies")
for error in loaded["errors"]:
    st.error(f"Policies failed to load, none are active:\n\n```\n{error}\n```")
if loaded["directory"] is None:
    st.info("No policies configured (automation.policies_dir).")
elif not loaded["policies"] and not loaded["errors"]:
    st.info(f"No policies in {loaded['directory']}.")
else:
    st.caption(f"From {loaded['directory']}.")
    st.dataframe(
        [
            {
                "policy": p["name"],
                "mode": p["mode"],
                "action": p["action"]["type"],
                "match": ", ".join(f"{k}={v}" for k, v in p["match"].items() if v),
                "cooldown s": p["guardrails"]["cooldown_seconds"],
                "per hour": p["guardrails"]["max_actions_per_hour"],
                "runbook": p["runbook"] or "",
                "enabled": p["enabled"],
                "version": p["version"],
            }
            for p in loaded["policies"]
        ],
        hide_index=True,
        width="stretch",
    )
    names = [p["name"] for p in loaded["policies"]]
    chosen = st.selectbox("Policy details", names, key="policy_choice")
    policy = next(p for p in loaded["policies"] if p["name"] == chosen)
    st.code(yaml.safe_dump(policy, sort_keys=False, allow_unicode=True), language="yaml")

st.subheader("Runbooks")
try:
    books = client.runbooks()
except ApiError as exc:
    st.error(f"Could not load runbooks: {exc}")
    books = []
if books:
    name = st.selectbox(
        "Runbook",
        [b["name"] for b in books],
        key="runbook_choice",
        format_func=lambda n: next(b["title"] for b in books if b["name"] == n),
    )
    try:
        book = client.runbook(str(name))
    except ApiError as exc:
        st.error(f"Could not load runbook {name}: {exc}")
    else:
        if book["policies"]:
            st.caption("Linked from: " + ", ".join(book["policies"]))
        with st.container(border=True):
            st.markdown(book["markdown"])

st.subheader("Policy backtest")
st.caption("Replays stored incidents through the policies as they are now; changes nothing.")
with st.form("backtest"):
    since = st.date_input("Incidents opened since", value=None, key="backtest_since")
    until = st.date_input("and before", value=None, key="backtest_until")
    run = st.form_submit_button("Run backtest")
if run:
    try:
        result = client.backtest(
            since=datetime.combine(since, time(), UTC).isoformat() if since else None,
            until=datetime.combine(until, time(), UTC).isoformat() if until else None,
        )
    except ApiError as exc:
        st.error(f"Backtest refused: {exc}")
    else:
        summary = result["summary"]
        cols = st.columns(3)
        cols[0].metric("Incidents", summary["incidents"])
        cols[1].metric("Decisions", summary["decisions"])
        cols[2].metric("Most actions in one hour", summary["actions_per_hour"]["max"])
        st.dataframe(
            [{"policy": k, **v} for k, v in summary["by_policy"].items()],
            hide_index=True,
            width="stretch",
        )
        spent = summary["cost"]
        if spent["by_policy"]:
            money = spent["currency"]
            st.caption(
                f"What the changes would have cost ({money}; each from its moment to the end "
                "of the window; budgets are not replayed):"
            )
            st.dataframe(
                [
                    {
                        "policy": name,
                        f"added {money}/h": round(c["added_per_hour"], 4),
                        f"spent {money}": round(c["spent"], 2),
                        "unpriced": int(c["unpriced"]),
                    }
                    for name, c in spent["by_policy"].items()
                ],
                hide_index=True,
                width="stretch",
                key="backtest_cost",
            )
        if summary["refused_by_guardrail"]:
            st.caption(
                "Refused by: "
                + ", ".join(f"{k} ({v})" for k, v in summary["refused_by_guardrail"].items())
            )
        st.dataframe(result["decisions"], hide_index=True, width="stretch")
