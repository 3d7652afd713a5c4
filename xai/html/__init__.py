"""Self-contained HTML report pages (``report.html``) for explain runs, sweep comparisons and data-set runs.

Entry points: :func:`write_model_page` (``<run>/<model>/``), :func:`write_comparison_page`
(``<sweep>/comparison/``) and :func:`write_dataset_page` (``<run>/<model>/`` of ``task=dataset``).
Each reads the JSON files on disk and writes ``report.html`` atomically; the page works from the
file system without network (CSS and JavaScript inline, relative links to the run's files).
:func:`write_report_page` is the tasks' one call: it honours ``report.html`` and never lets a page
failure cost a run its results.
"""

from __future__ import annotations

from xai.html.pages import (
    HtmlOptions,
    html_options,
    write_comparison_page,
    write_dataset_page,
    write_model_page,
    write_report_page,
)

__all__ = [
    "HtmlOptions",
    "html_options",
    "write_comparison_page",
    "write_dataset_page",
    "write_model_page",
    "write_report_page",
]
