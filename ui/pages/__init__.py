"""Streamlit pages (run as scripts by ui/app.py); a package only so the wheel ships them."""
