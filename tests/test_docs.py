"""The docs' relative links lead somewhere: every linked file exists and every linked
Markdown anchor is a heading (GitHub's slug) or an explicit ``<a id>`` of that file."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return ({_slug(h) for h in re.findall(r"^#+ (.*)$", text, re.M)}
            | set(re.findall(r'<a id="([^"]+)"', text)))


def broken_links(files: list[Path]) -> list[str]:
    out = []
    for f in files:
        for link in LINK.findall(f.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", link):
                continue
            path, _, anchor = link.partition("#")
            target = (f.parent / path).resolve() if path else f.resolve()
            if not target.exists():
                out.append(f"{f.relative_to(ROOT)}: no file {link}")
            elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
                out.append(f"{f.relative_to(ROOT)}: no anchor {link}")
    return out


def test_doc_links_resolve():
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
             *sorted((ROOT / "benchmarks").glob("*.md"))]
    assert not broken_links(files), "\n".join(broken_links(files))


def test_a_broken_anchor_is_found(tmp_path, monkeypatch):
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    (tmp_path / "a.md").write_text("# Title\n[ok](#title) [bad](b.md#nope) [gone](c.md)\n")
    (tmp_path / "b.md").write_text("## Something else\n")
    assert broken_links([tmp_path / "a.md"]) == ["a.md: no anchor b.md#nope",
                                                 "a.md: no file c.md"]
