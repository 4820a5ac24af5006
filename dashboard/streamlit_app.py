"""Console entry point (`aiops console`): sign-in with an API token, then the pages.

Pages live in `app_pages/`; this router only handles the session's token and navigation.
"""

from __future__ import annotations

import streamlit as st

from controlplane.domain.models import Role
from dashboard.api_client import ApiClient, ApiError, api_url
from dashboard.live import INTERVAL_SECONDS

st.set_page_config(page_title="AIOps control plane", page_icon=":rotating_light:", layout="wide")


def sign_in() -> None:
    st.title("AIOps control plane")
    st.caption(f"API: {api_url()}")
    with st.form("sign-in"):
        token = st.text_input(
            "API token",
            type="password",
            help="Made with `aiops token create NAME --role operator`.",
        )
        submitted = st.form_submit_button("Sign in")
    if submitted:
        token = token.strip()
        if not token:
            st.error("Enter an API token.")
            return
        try:
            who = ApiClient(token).whoami()
        except ApiError as exc:
            st.error(f"Sign-in failed: {exc}")
            return
        if who["role"] == Role.WEBHOOK:
            st.error(
                f"Sign-in refused: {who['name']!r} is a webhook token; a webhook token can only "
                "deliver alerts (Alertmanager, OTLP exporters). Sign in with a viewer, operator "
                "or admin token."
            )
            return
        st.session_state.update(token=token, user=who)
        st.rerun()


def sign_out() -> None:
    for key in ("token", "user"):
        st.session_state.pop(key, None)


if "token" not in st.session_state:
    sign_in()
else:
    user = st.session_state["user"]
    with st.sidebar:
        st.markdown(f"Signed in as **{user['name']}** ({user['role']})")
        st.button("Sign out", on_click=sign_out)
        st.session_state.setdefault("auto_refresh", True)
        st.toggle(f"Auto-refresh ({INTERVAL_SECONDS} s)", key="auto_refresh")
    page = st.navigation(
        [
            st.Page(
                "app_pages/overview.py",
                title="Overview",
                icon=":material/dashboard:",
                default=True,
            ),
            st.Page("app_pages/incidents.py", title="Incidents", icon=":material/crisis_alert:"),
            st.Page("app_pages/approvals.py", title="Approvals", icon=":material/approval:"),
            st.Page("app_pages/actions.py", title="Actions and audit", icon=":material/history:"),
            st.Page("app_pages/capacity.py", title="Capacity", icon=":material/trending_up:"),
            st.Page(
                "app_pages/policies.py",
                title="Policies and runbooks",
                icon=":material/menu_book:",
            ),
        ]
    )
    page.run()
