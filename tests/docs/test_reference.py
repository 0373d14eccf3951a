"""The reference pages name everything they claim to: every PLUGIN_* variable the
library reads or sets, every option of the public classes, every public name and error."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

import pyvider_rpcplugin_sync as package
from pyvider_rpcplugin_sync import _constants

DOCS = Path(__file__).resolve().parents[2] / "docs"
pytestmark = pytest.mark.timeout(30)


def table_names(page: str) -> set[str]:
    """The backquoted names in the first column of the page's tables."""
    text = (DOCS / page).read_text()
    return {
        name
        for row in re.findall(r"^\| ([^|]+) \|", text, re.M)
        for name in re.findall(r"`(\w+)`", row)
    }


def test_every_environment_variable_is_in_the_configuration_reference() -> None:
    names = {value for key, value in vars(_constants).items() if key.startswith("ENV_")}
    assert names, "no ENV_ constants found"
    documented = table_names("configuration.md")
    assert sorted(names - documented) == []


@pytest.mark.parametrize(
    "target",
    [package.PluginProcess, package.PluginServer, package.SharedPlugin],
    ids=lambda t: t.__name__,
)
def test_every_option_is_in_the_configuration_reference(target: type) -> None:
    parameters = set(inspect.signature(target).parameters) - {"registrars", "cmd", "options"}
    if target is package.PluginProcess:  # **options: the fields of HostConfig
        parameters |= {f.name for f in dataclasses.fields(package.HostConfig) if f.init}
    if target is package.SharedPlugin:  # **options: PluginProcess's, plus its own
        parameters -= {"config"}
    assert sorted(parameters - table_names("configuration.md")) == []


def test_serve_options_are_documented() -> None:
    own = set(inspect.signature(package.serve).parameters) - {"registrars", "server_options"}
    assert sorted(own - table_names("configuration.md")) == []


def test_every_public_name_is_in_the_api_reference() -> None:
    text = (DOCS / "api.md").read_text()
    missing = [
        name
        for name in package.__all__
        if name != "__version__" and f"::: pyvider_rpcplugin_sync.{name}\n" not in text
    ]
    assert missing == []


def test_every_error_is_in_the_errors_reference() -> None:
    errors = [
        name
        for name in package.__all__
        if isinstance(value := getattr(package, name), type) and issubclass(value, Exception)
    ]
    text = (DOCS / "errors.md").read_text()
    assert len(errors) >= 9
    assert [name for name in errors if name not in text] == []


@pytest.mark.parametrize("page", sorted(DOCS.rglob("*.md")), ids=lambda p: p.name)
def test_pages_stay_short(page: Path) -> None:
    assert len(page.read_text().splitlines()) < 500, "split the page"


SPHINX_ROLE = re.compile(r":(?:class|meth|func|attr|data|exc|mod|obj):`")


def test_docstrings_use_markdown_not_sphinx_roles() -> None:
    # mkdocstrings renders docstrings as Markdown: a Sphinx role shows up as raw text.
    source = Path(package.__file__).parent
    offenders = [
        f"{path.relative_to(source)}:{number}"
        for path in sorted(source.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SPHINX_ROLE.search(line)
    ]
    assert offenders == []
