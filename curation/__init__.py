"""Assay's library: store, jobs, interchange format, generation, verification,
diversity, review and export. Knows nothing of Streamlit."""

__version__ = "0.1.0"
