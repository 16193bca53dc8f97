"""The documentation is checked like code: every config key and every exit code is documented.

The documentation is README.rst and every ``docs/*.rst`` file. A section ``[name]`` is
documented under a heading that names it (````[name]```` ...); its keys must be named
(````key````) in the text under that heading, down to the next heading of the same or a higher
level, so a key documented for one section never counts for another of the same name
(``use``, ``path``, ``timeout``...).
"""

from __future__ import annotations

import configparser
import re
from dataclasses import dataclass
from pathlib import Path

import docutils.core
from support import EXAMPLE, ROOT

from phishme_intel import errors

README = ROOT / "README.rst"
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("*.rst"))]
_ADORNMENT = re.compile(r"^([=\-~^\"'`#*+.:_])\1{2,}$")


@dataclass
class Part:
    """The text under one heading of a document, down to its next heading of the same or a higher level."""

    document: Path
    title: str
    text: str


def _parts(document: Path) -> list[Part]:
    """Every heading of an RST document with the text under it (its subsections included)."""
    lines = document.read_text().splitlines()
    headings = []  # (line number of the title, level)
    styles: list[tuple[str, bool]] = []  # adornment styles in order of first use: the levels
    for number in range(1, len(lines)):
        title, underline = lines[number - 1], lines[number]
        if not _ADORNMENT.match(underline) or not title.strip() or _ADORNMENT.match(title):
            continue
        if len(underline) < len(title.rstrip()):
            continue
        overlined = number >= 2 and lines[number - 2] == underline
        style = (underline[0], overlined)
        if style not in styles:
            styles.append(style)
        headings.append((number - 1, styles.index(style)))
    parts = []
    for index, (start, level) in enumerate(headings):
        end = next((line for line, deeper in headings[index + 1:] if deeper <= level), len(lines))
        parts.append(Part(document, lines[start].strip(), "\n".join(lines[start:end])))
    return parts


PARTS = [part for document in DOCUMENTS for part in _parts(document)]


def _sections_documented(section: str) -> list[Part]:
    """The parts whose heading names ``[section]``."""
    return [part for part in PARTS if f"``[{section}]``" in part.title]


def _all_error_classes(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_error_classes(sub)


def test_every_key_of_config_ini_example_is_described_under_its_section():
    example = configparser.ConfigParser(interpolation=None)
    example.read(EXAMPLE)
    missing = []
    for section in example.sections():
        parts = _sections_documented(section)
        if not parts:
            missing.append(f"[{section}] (no heading names it)")
        for key in example[section]:
            if not any(f"``{key}``" in part.text for part in parts):
                missing.append(f"[{section}] {key}")
    assert missing == []


def test_a_key_documented_only_under_another_section_is_missing(tmp_path):
    document = tmp_path / "sample.rst"
    document.write_text(
        "Title\n=====\n\n``[one]``\n---------\n\n``use``\n    on.\n\n"
        "``[two]``\n---------\n\n``path``\n    a file.\n\nNext chapter\n============\n\n``timeout``\n"
    )
    parts = {part.title: part.text for part in _parts(document)}
    assert "``use``" in parts["``[one]``"] and "``path``" not in parts["``[one]``"]
    assert "``path``" in parts["``[two]``"] and "``use``" not in parts["``[two]``"]
    assert "``timeout``" not in parts["``[two]``"]
    assert "``[one]``" in parts["Title"] and "``timeout``" not in parts["Title"]


def test_every_key_of_config_ini_example_has_a_comment_above_it():
    lines = EXAMPLE.read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        if re.match(r"^\w+\s*=", line):
            above = number - 1
            while above >= 0 and re.match(r"^\w+\s*=", lines[above]):
                above -= 1
            if above < 0 or not lines[above].startswith("#"):
                undocumented.append(line)
    assert undocumented == []


def test_every_exit_code_is_in_the_exit_codes_table():
    codes = {errors.Error.exit_code} | {cls.exit_code for cls in _all_error_classes(errors.Error)}
    tables = [part.text for part in PARTS if part.title == "Exit codes"]
    assert tables, "no document has an 'Exit codes' heading"
    documented = {int(code) for table in tables for code in re.findall(r"^(\d+)\s{2,}", table, re.MULTILINE)}
    assert codes <= documented
    assert 0 in documented


def test_the_readme_is_short_has_a_table_of_contents_and_links_only_to_files_of_the_repository():
    text = README.read_text()

    assert len(text.encode()) <= 15 * 1024
    assert ".. contents::" in text
    for document in DOCUMENTS:
        for target in re.findall(r"`[^`<]*<([^>]+)>`_", document.read_text()):
            if "://" in target:
                continue
            path = (document.parent / target.split("#")[0]).resolve()
            assert path.is_file(), f"{document.name} links to {target}, which is not in the repository"
    assert [document.name for document in DOCUMENTS if "API.md" in document.read_text()] == []


def test_every_docs_page_is_linked_from_the_readme():
    text = README.read_text()

    assert [document.name for document in DOCUMENTS[1:] if f"docs/{document.name}" not in text] == []


def test_every_page_is_valid_restructuredtext():
    for document in DOCUMENTS:
        docutils.core.publish_doctree(
            document.read_text(), source_path=str(document),
            settings_overrides={"report_level": 2, "halt_level": 2, "warning_stream": False},
        )
