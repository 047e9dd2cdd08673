"""The documentation indexes stay complete: the architecture page names every package, the README links
every page under docs/."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "growthcurve"


def test_architecture_tree_names_every_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    tree = text[text.index("src/growthcurve/") : text.index("```", text.index("src/growthcurve/"))]
    packages = sorted(p.name for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("__"))
    missing = [p for p in packages if not re.search(rf"^  {re.escape(p)}/", tree, re.MULTILINE)]
    assert len(packages) >= 14
    assert missing == []


def test_readme_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    index = readme[readme.index("## Documentation") :]
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    missing = [p for p in pages if f"(docs/{p})" not in index]
    assert missing == []


def _commands(group: object, path: tuple[str, ...] = ()) -> list[tuple[str, object]]:
    subs = getattr(group, "commands", None)
    if subs is None:
        return [(" ".join(path), group)]
    return [c for name, sub in subs.items() for c in _commands(sub, (*path, name))]


def test_cli_reference_shows_every_required_option() -> None:
    """docs/cli.md once dropped `ab plan`'s required --baseline/--mde: a reader could not run the command."""
    import typer

    from growthcurve.cli import app

    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    missing = []
    for name, command in _commands(typer.main.get_command(app)):
        section = re.search(rf"^## `growthcurve {re.escape(name)}`.*?(?=^## |\Z)", doc, re.DOTALL | re.MULTILINE)
        where = section.group(0) if section else doc
        for param in getattr(command, "params", []):
            if getattr(param, "param_type_name", "") == "option" and param.required and param.opts[0] not in where:
                missing.append(f"{name} {param.opts[0]}")
    assert missing == []
