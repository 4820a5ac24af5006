"""The Streamlit on-call console. It talks only to the API (`api_client`), with the user's
token; it never touches the database."""
