"""The app's pages: one Streamlit script each, routed by app.py's `st.navigation`.

Streamlit treats a `pages/` folder beside the entry point as an old-style multipage app
until `st.navigation` first runs in the server process, so a deep link (say /review)
opened first on a fresh server runs that script without app.py. `pages.common.page_header`
notices a page run that app.py did not route and runs the app's router in its place, with
public calls only; see `common.route_through_the_app`.

`PAGES` is the one list of pages: app.py builds its navigation from it, and tests and
benchmarks name a page's script by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

FOLDER = Path(__file__).resolve().parent


@dataclass(frozen=True)
class PageEntry:
    """One page of the navigation: its section, script (in this folder), title, icon and URL."""

    section: str
    script: str
    title: str
    icon: str
    url_path: str | None = None
    default: bool = False

    @property
    def path(self) -> str:
        """The script's path relative to app.py, as `st.Page`, `st.switch_page` and AppTest take it."""
        return f"{FOLDER.name}/{self.script}"


PAGES: tuple[PageEntry, ...] = (
    PageEntry("Workspace", "home.py", "Overview", ":material/dashboard:", default=True),
    PageEntry("Workspace", "import_data.py", "Import", ":material/upload_file:", "import"),
    PageEntry("Curate", "generate.py", "Generate", ":material/auto_awesome:", "generate"),
    PageEntry("Curate", "samples.py", "Samples", ":material/table_rows:", "samples"),
    PageEntry("Curate", "verify.py", "Verify", ":material/fact_check:", "verify"),
    PageEntry("Curate", "review.py", "Review", ":material/rate_review:", "review"),
    PageEntry("Curate", "diversity.py", "Diversity", ":material/scatter_plot:", "diversity"),
    PageEntry("Ship", "export.py", "Export", ":material/download:", "export"),
    PageEntry("Ship", "jobs.py", "Jobs", ":material/pending_actions:", "jobs"),
)


def navigation_sections() -> dict[str, list[st.Page]]:
    """`PAGES` as `st.navigation` takes them, by section."""
    sections: dict[str, list[st.Page]] = {}
    for entry in PAGES:
        sections.setdefault(entry.section, []).append(
            st.Page(
                entry.path, title=entry.title, icon=entry.icon, url_path=entry.url_path, default=entry.default
            )
        )
    return sections
