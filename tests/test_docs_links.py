"""The user documentation (README.md, docs/, the READMEs beside results and configs) links only to
files that exist in the repository, with anchors that exist, and tells no work history."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted(
    [REPO / "README.md", *REPO.glob("docs/*.md"), *REPO.glob("train/configs/*.md"), *REPO.glob("bench/results/**/README.md")]
)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
INLINE_CODE = re.compile(r"`[^`\n]*`")
MD_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:img|a|source)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
EXTERNAL = ("http://", "https://", "mailto:")
# Words that narrate how the project was made rather than what it is; such notes belong in commit messages.
HISTORY = re.compile(r"\bsessions?\b|\bpredates?\b|\bwent from\b|\bthis run measured\b|\blast run\b", re.I)
OUTSIDE_PATHS = re.compile(r"(?<![\w.])(?:\.\./shared|/work/|/tmp/team)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links inside code are examples, not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: markdown marks and punctuation dropped, lower case, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = _slug(heading)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def links(path: Path) -> list[str]:
    prose = _prose(path.read_text(encoding="utf-8"))
    return MD_LINK.findall(prose) + HTML_LINK.findall(prose)


def broken_links(path: Path) -> list[str]:
    problems = []
    for target in links(path):
        if target.startswith(EXTERNAL):
            continue
        file_part, _, anchor = target.partition("#")
        if file_part.startswith("/"):
            problems.append(f"{target}: absolute path (use a path relative to {path.name})")
            continue
        dest = (path.parent / file_part).resolve() if file_part else path
        if REPO not in dest.parents and dest != REPO:
            problems.append(f"{target}: points outside the repository")
        elif not dest.exists():
            problems.append(f"{target}: no such file or folder")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(REPO)}")
    return problems


def test_the_documents_exist():
    names = {p.relative_to(REPO).as_posix() for p in DOCS}
    assert "README.md" in names
    assert {"docs/nodes.md", "docs/cli.md", "docs/training.md", "docs/model_card.md", "docs/benchmarks.md",
            "docs/testing.md", "docs/design.md"} <= names


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_relative_links_and_images_resolve(doc):
    assert broken_links(doc) == [], doc.relative_to(REPO)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_no_work_history_and_no_paths_outside_the_repository(doc):
    text = doc.read_text(encoding="utf-8")
    lines = [f"{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
             if HISTORY.search(line) or OUTSIDE_PATHS.search(line)]
    assert lines == [], doc.relative_to(REPO)


def _newcomer_commands() -> list[str]:
    """The command lines of the README's first code block (the two commands it opens with)."""
    block = FENCE.search((REPO / "README.md").read_text(encoding="utf-8")).group(0)
    return [line for line in block.splitlines()[1:-1] if line.strip() and not line.lstrip().startswith("#")]


def test_readme_opens_with_the_install_command_and_exactly_the_ci_test_command():
    install, tests = _newcomer_commands()
    ci = [line for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
          if line.strip() and not line.startswith("#") and not line.startswith(("set ", "cd "))]
    assert ci == [tests], "the README's test command must be exactly what .ci/run runs"
    example = re.search(r"python -m gan_core colorize (\S+) ", install)
    assert example and (REPO / example.group(1)).is_file(), install


def test_the_checker_finds_broken_links(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "REPO", tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "img.jpg").write_bytes(b"")
    (tmp_path / "docs" / "a.md").write_text("# Top part\n## Blend by λ\n", encoding="utf-8")
    doc = tmp_path / "README.md"
    doc.write_text(
        "[ok](docs/a.md#blend-by-λ) ![ok](img.jpg) <img src=\"img.jpg\"> [ok](#readme) [web](https://example.org/x)\n"
        "`[code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n# Readme\n"
        "[gone](docs/b.md) <img src=\"missing.png\"> [bad anchor](docs/a.md#nope) [out](../elsewhere.md) [abs](/etc/passwd)\n",
        encoding="utf-8",
    )
    problems = broken_links(doc)
    assert [p.split(":")[0] for p in problems] == ["docs/b.md", "docs/a.md#nope", "../elsewhere.md", "/etc/passwd",
                                                   "missing.png"]


@pytest.mark.parametrize("package", ["gan_core", "train"])
def test_the_module_maps_name_every_module(package):
    """design.md's table of a package's modules lists each module that exists, and only those."""
    text = (REPO / "docs/design.md").read_text(encoding="utf-8")
    section = text.split(f"### `{package}`, module by module", 1)[1].split("\n#", 1)[0]
    named = set(re.findall(r"`(\w+)\.py`", section))
    modules = {p.stem for p in (REPO / package).glob("*.py") if not p.stem.startswith("__")}
    assert named == modules, f"missing from the map: {sorted(modules - named)}; no such module: {sorted(named - modules)}"
