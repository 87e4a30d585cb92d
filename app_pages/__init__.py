"""The app's pages: one Streamlit script each, routed by app.py's `st.navigation`.

The folder is deliberately not called `pages/`: Streamlit treats a `pages/` folder beside
the entry point as an old-style multipage app until `st.navigation` first runs in the
server process, so a deep link (say /review) opened first on a fresh server would run
that script without app.py (no sidebar, file names as navigation).

`PAGES` is the one list of pages: app.py builds its navigation from it, and tests and
benchmarks name a page's script by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
