"""Dashboard helpers shared by the pages (Streamlit lives here, never in ``promptver``)."""
