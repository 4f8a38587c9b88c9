"""What every report's page must show at a glance (shared by the report and study tests)."""

from __future__ import annotations

import re

#: A list of three or more numbers, or a JSON object: what must never sit in a table cell.
_JSON_LIKE = re.compile(r"\[[^\]]*,[^\]]*,[^\]]*\]|\{\s*&quot;|\{\s*\"|\{\s*'")
_NUMBER = r"[+-]\d+\.\d{3}"


def assert_reads_at_a_glance(page: str, *, paired: bool = True) -> str:
    """The page opens with the headline (claim, verdict, paired numbers with intervals, the paper's numbers and a
    chart) before any per-seed table, and no table cell holds JSON or a list. Returns the headline's HTML."""
    body = page[page.index("<body>"):]
    first = body.index("</h1>") + len("</h1>")
    assert body[first:].lstrip().startswith('<section class="headline"'), "the headline must come right after the title"
    headline = body[first:body.index("</section>", first)]
    assert "Claim tested." in headline and "Verdict: " in headline
    if paired:
        assert "Paired difference from" in headline
        assert re.search(rf"<td>{_NUMBER}", headline), "paired differences"
        assert re.search(rf"\[{_NUMBER}, {_NUMBER}\]", headline), "95 % intervals (over seeds, or over facts)"
    assert "The paper beside ours" in headline and "<td>paper</td>" not in headline
    assert "Plotly.newPlot(" in headline, "the comparison chart is in the headline"
    if "<h2>Per-seed records</h2>" in body:
        assert body.index("Plotly.newPlot(") < body.index("<h2>Per-seed records</h2>")
    for cell in re.findall(r"<td>(.*?)</td>", body, flags=re.DOTALL):
        assert not _JSON_LIKE.search(cell), f"a table cell holds JSON or a list: {cell[:80]}"
    return headline
