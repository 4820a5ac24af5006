"""Console entry point (`aiops console`): sign-in with an API token, then the pages.

Pages live in `app_pages/`; this router only handles the sign-in (kept across reloads by
`dashboard.sessions`) and navigation. The URL (page and query parameters) is the page's
address: a reload, or a link pasted into chat, opens the same page after sign-in.
"""

from __future__ import annotations

import streamlit as st

from controlplane.domain.models import Role
from dashboard.api_client import ApiClient, ApiError, SessionEndedError, api_url
from dashboard.live import INTERVAL_SECONDS
from dashboard.sessions import COOKIE, end_session, remember, sessions

st.set_page_config(page_title="AIOps control plane", page_icon=":rotating_light:", layout="wide")


def restore() -> bool:
    """Sign the browser back in from its session cookie (a reload); the token is checked
    with the API again, so a revoked token or a changed role takes effect at once (an API
    that cannot be reached keeps the sign-in: the pages say the API is down)."""
    session_id = st.context.cookies.get(COOKIE)
    found = sessions().find(session_id) if session_id else None
    if session_id is None or found is None:
        return False
    try:
        who = ApiClient(found.token).whoami()
    except SessionEndedError:
        sessions().close(session_id)
        return False
    except ApiError:  # the API is down for now: keep the sign-in, the pages say it is down
        who = found.user
    st.session_state.update(token=found.token, user=who, session_id=session_id)
    return True


def sign_in() -> None:
    remember(None)  # whatever session cookie the browser still has is over
    st.title("AIOps control plane")
    if why := st.session_state.pop("signed_out_because", None):
        st.warning(why)
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
        except (ApiError, SessionEndedError) as exc:
            st.error(f"Sign-in failed: {exc}")
            return
        if who["role"] == Role.WEBHOOK:
            st.error(
                f"Sign-in refused: {who['name']!r} is a webhook token; a webhook token can only "
                "deliver alerts (Alertmanager, OTLP exporters). Sign in with a viewer, operator "
                "or admin token."
            )
            return
        session_id = sessions().open(token, who)
        st.session_state.update(token=token, user=who, session_id=session_id)
        st.rerun()


def pages() -> list[st.Page]:
    return [
        st.Page(
            "app_pages/overview.py", title="Overview", icon=":material/dashboard:", default=True
        ),
        st.Page("app_pages/incidents.py", title="Incidents", icon=":material/crisis_alert:"),
        st.Page("app_pages/approvals.py", title="Approvals", icon=":material/approval:"),
        st.Page("app_pages/actions.py", title="Actions and audit", icon=":material/history:"),
        st.Page("app_pages/capacity.py", title="Capacity", icon=":material/trending_up:"),
        st.Page("app_pages/oncall.py", title="On-call", icon=":material/notifications:"),
        st.Page("app_pages/slos.py", title="SLOs", icon=":material/speed:"),
        st.Page("app_pages/cost.py", title="Cost", icon=":material/payments:"),
        st.Page("app_pages/noise.py", title="Noise", icon=":material/volume_up:"),
        st.Page(
            "app_pages/policies.py", title="Policies and runbooks", icon=":material/menu_book:"
        ),
    ]


if "token" not in st.session_state and not restore():
    # The page the URL names is kept (not run): after sign-in it opens, query and all.
    st.navigation(pages(), position="hidden")
    sign_in()
else:
    user = st.session_state["user"]
    with st.sidebar:
        if session_id := st.session_state.get("session_id"):
            remember(session_id)  # a reload finds the sign-in again
        st.markdown(f"Signed in as **{user['name']}** ({user['role']})")
        st.button("Sign out", key="sign-out", on_click=end_session)
        st.session_state.setdefault("auto_refresh", True)
        st.toggle(f"Auto-refresh ({INTERVAL_SECONDS} s)", key="auto_refresh")
    try:
        st.navigation(pages()).run()
    except SessionEndedError as exc:
        end_session(f"Signed out: the API refused the token: {exc}.")
        st.rerun()
