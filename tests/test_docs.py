"""The documentation is checked like code: every config key and every exit code is in README.rst."""

from __future__ import annotations

import configparser
import re

from support import EXAMPLE, ROOT

from phishme_intel import errors

README = (ROOT / "README.rst").read_text()


def _all_error_classes(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _all_error_classes(sub)


def test_every_key_of_config_ini_example_is_described_in_the_readme():
    example = configparser.ConfigParser(interpolation=None)
    example.read(EXAMPLE)
    missing = []
    for section in example.sections():
        if f"[{section}]" not in README:
            missing.append(f"[{section}]")
        for key in example[section]:
            if f"``{key}``" not in README:
                missing.append(f"[{section}] {key}")
    assert missing == []


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


def test_every_exit_code_is_in_the_readme_table():
    codes = {errors.Error.exit_code} | {cls.exit_code for cls in _all_error_classes(errors.Error)}
    table = README[README.index("Exit codes\n"):]
    documented = {int(code) for code in re.findall(r"^(\d+)\s{2,}", table, re.MULTILINE)}
    assert codes <= documented
    assert 0 in documented
