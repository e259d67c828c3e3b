"""Point the docs' links to lines of code at their lines again, after the code moved.

A link `[text](../dinogen/x.py#L12 "marker")` names a line by what it holds (the marker, else the text);
tests/test_cells.py fails when line 12 no longer holds it. This finds the line that does (the nearest, if
several do) and rewrites the number. Run from the repository root: python tools/relink_code.py
"""

import re
from pathlib import Path

CODE_LINK = re.compile(r"\[(`[^`]+`|[^\]`]+)\]\((\.\./dinogen/[\w/]+\.py)#L(\d+)(?: \"([^\"]+)\")?\)")


def relinked(page: Path, link: re.Match) -> str:
    label, target, number, marker = link.groups()
    lines = (page.parent / target).read_text(encoding="utf-8").splitlines()
    expected, old = marker or label.strip("`"), int(number)
    if old <= len(lines) and expected in lines[old - 1]:
        return link.group(0)
    holding = [i for i, line in enumerate(lines, start=1) if expected in line]
    if not holding:
        raise SystemExit(f"{page}: no line of {target} holds {expected!r}; fix the link by hand")
    new = min(holding, key=lambda i: abs(i - old))
    print(f"{page}: {target}#L{old} -> #L{new}")
    return link.group(0).replace(f"#L{number}", f"#L{new}")


for page in sorted(Path("docs").glob("*.md")):
    text = page.read_text(encoding="utf-8")
    page.write_text(CODE_LINK.sub(lambda link, page=page: relinked(page, link), text), encoding="utf-8")
