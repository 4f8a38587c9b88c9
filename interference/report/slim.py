"""Slim report folders: plotly's JavaScript (4.6 MB) loaded from its CDN instead of inlined into every page, and
results.json in the toolkit's compact layout.

`Report.write` makes each report.html self-contained, so that it opens offline. A repository that commits many
results folders then carries one copy of plotly.js per page, and the repository is what travels to a GPU machine
(64 MiB in all, the working tree included). `slim_folder` rewrites a report folder's page to load the same plotly.js
version from cdn.plot.ly (text and tables read offline; the charts need the network), rewrites its results.json in
the layout `interference.io.atomic.json_text` writes (about 40 % fewer bytes than the fully indented files written
before 2026-12-06) with each list a record repeats from an earlier one (a seed's relation lists, its snapshot's
answers) stored once (`interference.report.files.share_repeated_lists`: the same data once `load_results` reads
it), and updates its manifest.json, so that `load_results` still accepts the folder. Only files that their manifest
names and matches are touched: a folder the toolkit did not write, or one edited since, is refused.

    python -m interference.report.slim results/        # every report folder under results/
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ..io import atomic
from ..io.errors import CommandParser, InterferenceError, cli_errors
from .document import manifest_text, plotly_script
from .files import HTML_FILE, MANIFEST_FILE, RESULTS_FILE, check_manifest, share_repeated_lists

_INLINE = re.compile(r'<script type="text/javascript">(/\*\*\s*\* plotly\.js v(\d+\.\d+\.\d+).*?)</script>', re.S)


def slim_html(page: str) -> str | None:
    """`page` with its inlined plotly.js replaced by the CDN script of the same version; None when it inlines none."""
    found = _INLINE.search(page)
    if found is None:
        return None
    return page[:found.start()] + plotly_script("cdn", found.group(2)) + page[found.end():]


def slim_results(text: str) -> str | None:
    """results.json `text` in the compact layout with repeated record lists shared (`share_repeated_lists`; the same
    data once `load_results` reads it); None when it has that layout already."""
    compact = atomic.json_text(share_repeated_lists(json.loads(text)), allow_nan=False)
    return None if compact == text else compact


def slim_folder(folder: str | Path) -> bool:
    """Slim the report page and results.json of one report folder (see the module); False when both are slim."""
    folder = Path(folder)
    manifest = check_manifest(folder)  # the files are the ones the toolkit wrote, unchanged since
    if manifest is None or HTML_FILE not in manifest["files"]:
        raise InterferenceError(f"{folder} holds no report page named in a {MANIFEST_FILE}: not the toolkit's")
    texts = {name: (folder / name).read_bytes().decode("utf-8") for name in manifest["files"]}
    slimmed = {HTML_FILE: slim_html(texts[HTML_FILE])}
    if RESULTS_FILE in texts:
        slimmed[RESULTS_FILE] = slim_results(texts[RESULTS_FILE])
    slimmed = {name: text for name, text in slimmed.items() if text is not None}
    if not slimmed:
        return False
    texts.update(slimmed)
    for name, text in slimmed.items():
        atomic.write_text(folder / name, text)
    atomic.write_text(folder / MANIFEST_FILE, manifest_text(manifest.get("title", ""), texts))
    return True


def report_folders(root: str | Path) -> list[Path]:
    """The report folders under `root` (those with a manifest.json), `root` included, in path order."""
    root = Path(root)
    if not root.is_dir():
        raise InterferenceError(f"{root} is not a folder")
    return sorted(path.parent for path in root.rglob(MANIFEST_FILE) if _names_page(path))


def _names_page(manifest: Path) -> bool:
    try:
        return HTML_FILE in json.loads(manifest.read_text(encoding="utf-8")).get("files", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="python -m interference.report.slim", description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+", metavar="FOLDER", help="folders searched for report folders")
    args = parser.parse_args(argv)
    folders = [folder for root in args.roots for folder in report_folders(root)]
    for folder in folders:  # every folder checked before any is rewritten
        check_manifest(folder)
    slimmed = [folder for folder in folders if slim_folder(folder)]
    print(f"{len(slimmed)} of {len(folders)} report folders slimmed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
