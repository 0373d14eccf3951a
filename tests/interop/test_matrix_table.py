"""docs/compatibility.md (and the README's short table, once it has one) against the tests.

``MATRIX`` names, for every cell of the two tables in docs/compatibility.md, the interop
test nodes that stand behind it. A cell's claim must agree with its nodes, as pytest
collects them right now (in a subprocess, so this module's own run is not disturbed):

- ``yes``: at least one node; every node exists and carries no ``xfail`` mark;
- ``pending``: at least one node; every node exists and is ``xfail(strict=True)``
  (when the feature lands, the node XPASSes, its marker is removed, and this test then
  asks for the cell to become ``yes``);
- ``n/a``: the row's notes say why; nodes, if any, are evidence tests that pass;
- ``not tested``: no nodes.

Every cell of the documents must be in ``MATRIX`` and the other way round.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DOC = REPO_ROOT / "docs" / "compatibility.md"
README = REPO_ROOT / "README.md"
CLAIMS = ("yes", "pending", "n/a", "not tested")

GO_HOST = "Go go-plugin 1.0.1 host → our plugin"
OUR_HOST_GO = "our host → Go go-plugin 1.0.1 plugin"
PYVIDER_HOST = "pyvider-rpcplugin 0.5.5 host → our plugin"
OUR_HOST_PYVIDER = "our host → pyvider-rpcplugin 0.5.5 plugin"
GO_HOST_CB = GO_HOST + ", brokered callbacks"
OUR_HOST_GO_CB = OUR_HOST_GO + ", brokered callbacks"

GH = "tests/interop/test_go_host.py::"
OG = "tests/interop/test_our_host_go.py::"
PV = "tests/interop/test_pyvider.py::"
BG = "tests/interop/test_broker_go.py::"

MUX = "multiplexed broker"
TRANSPORT_COLUMNS = ("unix", "tcp", "plaintext", "AutoMTLS", MUX)
CHECK_COLUMNS = ("1 MiB Put/Get", "ping", "graceful shutdown", "two versions", "wrong cookie")

_go_check_unix = GH + "test_go_host_loads_python_plugin[unix]"
_go_check_tcp = GH + "test_go_host_loads_python_plugin[tcp]"
_og_unix = OG + "test_our_host_go_plugin_unix_plaintext"
_pv_unix = PV + "test_pyvider_host_loads_our_plugin[unix]"
_pv_tcp = PV + "test_pyvider_host_loads_our_plugin[tcp]"
_op_unix = PV + "test_our_host_loads_pyvider_plugin[unix]"
_op_tcp = PV + "test_our_host_loads_pyvider_plugin[tcp]"
_bg = BG + "test_go_counter_host_to_our_counter_plugin"

# (row, column) -> the test nodes behind that cell.
MATRIX: dict[tuple[str, str], tuple[str, ...]] = {
    # --- transports and TLS ---
    (GO_HOST, "unix"): (_go_check_unix,),
    (GO_HOST, "tcp"): (_go_check_tcp, GH + "test_go_host_python_plugin_honours_port_range"),
    (GO_HOST, "plaintext"): (_go_check_unix, _go_check_tcp),
    (GO_HOST, "AutoMTLS"): (
        OG + "test_go_host_automtls_to_our_plugin[unix]",
        OG + "test_go_host_automtls_to_our_plugin[tcp]",
    ),
    (OUR_HOST_GO, "unix"): (_og_unix,),
    (OUR_HOST_GO, "tcp"): (OG + "test_our_host_go_plugin_tcp_not_applicable",),
    (OUR_HOST_GO, "plaintext"): (_og_unix,),
    (OUR_HOST_GO, "AutoMTLS"): (OG + "test_our_host_go_plugin_unix_automtls",),
    (PYVIDER_HOST, "unix"): (_pv_unix,),
    (PYVIDER_HOST, "tcp"): (_pv_tcp,),
    (PYVIDER_HOST, "plaintext"): (_pv_unix, _pv_tcp),
    (PYVIDER_HOST, "AutoMTLS"): (
        PV + "test_pyvider_host_automtls_to_our_plugin[unix-p384-default]",
        PV + "test_pyvider_host_automtls_to_our_plugin[tcp-p384-default]",
        PV + "test_pyvider_host_automtls_to_our_plugin[unix-p256]",
    ),
    (OUR_HOST_PYVIDER, "unix"): (_op_unix,),
    (OUR_HOST_PYVIDER, "tcp"): (_op_tcp,),
    (OUR_HOST_PYVIDER, "plaintext"): (_op_unix, _op_tcp),
    (OUR_HOST_PYVIDER, "AutoMTLS"): (
        PV + "test_our_host_automtls_pyvider_plugin[unix]",
        PV + "test_our_host_automtls_pyvider_plugin[tcp]",
        PV + "test_our_host_full_mtls_with_pyvider_plugin_verifying_host_cert",
    ),
    # --- brokered callbacks (GRPCBroker) ---
    (GO_HOST_CB, "unix"): (_bg + "[plain-unix]", _bg + "[automtls-unix]"),
    (GO_HOST_CB, "tcp"): (_bg + "[plain-tcp]", _bg + "[automtls-tcp]"),
    (GO_HOST_CB, "plaintext"): (_bg + "[plain-unix]", _bg + "[plain-tcp]"),
    (GO_HOST_CB, "AutoMTLS"): (_bg + "[automtls-unix]", _bg + "[automtls-tcp]"),
    (OUR_HOST_GO_CB, "unix"): (BG + "test_our_host_serves_sum_to_the_go_counter_plugin",),
    (OUR_HOST_GO_CB, "tcp"): (OG + "test_our_host_go_plugin_tcp_not_applicable",),
    (OUR_HOST_GO_CB, "plaintext"): (BG + "test_our_host_serves_sum_to_the_go_counter_plugin",),
    (OUR_HOST_GO_CB, "AutoMTLS"): (
        BG + "test_our_host_automtls_go_counter_plugin_fails_as_go_plugin_issue_109",
        BG + "test_go_counter_host_to_go_counter_plugin_for_reference[automtls]",
    ),
    # --- the multiplexed broker (go-plugin >= 1.6): n/a before, refused with a typed error ---
    (GO_HOST, MUX): (),
    (GO_HOST_CB, MUX): (),
    (OUR_HOST_GO, MUX): (OG + "test_our_multiplexing_host_refuses_a_go_plugin_1_0_1",),
    (OUR_HOST_GO_CB, MUX): (OG + "test_our_multiplexing_host_refuses_a_go_plugin_1_0_1",),
    (PYVIDER_HOST, MUX): (),
    (OUR_HOST_PYVIDER, MUX): (PV + "test_our_multiplexing_host_refuses_the_pyvider_plugin",),
    # --- what each pair checks ---
    (GO_HOST, "1 MiB Put/Get"): (_go_check_unix, _go_check_tcp),
    (GO_HOST, "ping"): (_go_check_unix, _go_check_tcp),
    (GO_HOST, "graceful shutdown"): (_go_check_unix, _go_check_tcp),
    (GO_HOST, "two versions"): (
        GH + "test_go_host_python_plugin_version_negotiation[1,2]",
        GH + "test_go_host_python_plugin_version_negotiation[2,1]",
    ),
    (GO_HOST, "wrong cookie"): (GH + "test_go_host_python_plugin_wrong_cookie",),
    (OUR_HOST_GO, "1 MiB Put/Get"): (_og_unix,),
    (OUR_HOST_GO, "ping"): (_og_unix,),
    (OUR_HOST_GO, "graceful shutdown"): (_og_unix,),
    (OUR_HOST_GO, "two versions"): (
        OG + "test_our_host_go_plugin_negotiates_highest_common_version[both-1,2]",
        OG + "test_our_host_go_plugin_negotiates_highest_common_version[both-2,1]",
    ),
    (OUR_HOST_GO, "wrong cookie"): (OG + "test_our_host_go_plugin_wrong_cookie",),
    (PYVIDER_HOST, "1 MiB Put/Get"): (_pv_unix, _pv_tcp),
    (PYVIDER_HOST, "ping"): (_pv_unix, _pv_tcp),
    (PYVIDER_HOST, "graceful shutdown"): (
        _pv_unix,
        PV + "test_pyvider_host_controller_shutdown_alone_stops_our_plugin",
    ),
    (PYVIDER_HOST, "two versions"): (),
    (PYVIDER_HOST, "wrong cookie"): (PV + "test_pyvider_host_wrong_cookie_is_refused[no-retry]",),
    (OUR_HOST_PYVIDER, "1 MiB Put/Get"): (_op_unix, _op_tcp),
    (OUR_HOST_PYVIDER, "ping"): (_op_unix, _op_tcp),
    (OUR_HOST_PYVIDER, "graceful shutdown"): (_op_unix, _op_tcp),
    (OUR_HOST_PYVIDER, "two versions"): (),
    (OUR_HOST_PYVIDER, "wrong cookie"): (
        PV + "test_our_host_wrong_cookie_refused_by_pyvider_plugin",
    ),
}

# --- real go-plugin 1.8.0 and 1.6.0 Go programs (tests/interop/go18) ---
H18 = "tests/interop/test_go18_host.py::"
O18 = "tests/interop/test_our_host_go18.py::"
GO_PLUGIN_MODULES = {"1.8.0": "go18", "1.6.0": "go16"}


def _go_module_cells(version: str, flavour: str) -> dict[tuple[str, str], tuple[str, ...]]:
    host = f"Go go-plugin {version} host → our plugin"
    ours = f"our host → Go go-plugin {version} plugin"
    cb = ", brokered callbacks"

    def kv(cell: str) -> str:
        return f"{H18}test_kv[{cell}-{flavour}]"

    def bh(cell: str, via: str = "sockets") -> str:
        return f"{H18}test_brokered_callbacks_both_ways[{via}-{cell}-{flavour}]"

    def ok(tls: str) -> str:
        return f"{O18}test_kv[{tls}-{flavour}]"

    def ob(tls: str, via: str = "sockets") -> str:
        return f"{O18}test_brokered_callbacks_both_ways[{via}-{tls}-{flavour}]"

    def mux(tls: str) -> str:
        return f"{H18}test_a_host_that_requires_broker_multiplexing_gets_it[{tls}-{flavour}]"

    unix_cells = ("unix-plain", "unix-automtls")
    tcp_cells = ("tcp-plain", "tcp-automtls")
    return {
        (host, "unix"): (*map(kv, unix_cells),
                         f"{H18}test_unix_socket_config_with_a_runner_func[{flavour}]",
                         f"{H18}test_unix_socket_config_with_cmd_sends_only_the_group[{flavour}]"),
        (host, "tcp"): tuple(map(kv, tcp_cells)),
        (host, "plaintext"): (kv("unix-plain"), kv("tcp-plain")),
        (host, "AutoMTLS"): (kv("unix-automtls"), kv("tcp-automtls")),
        (host + cb, "unix"): tuple(map(bh, unix_cells)),
        (host + cb, "tcp"): tuple(map(bh, tcp_cells)),
        (host + cb, "plaintext"): (bh("unix-plain"), bh("tcp-plain")),
        (host + cb, "AutoMTLS"): (bh("unix-automtls"), bh("tcp-automtls")),
        (ours, "unix"): (ok("plain"), ok("automtls"), f"{O18}test_socket_group[{flavour}]"),
        (ours, "tcp"): (ok("plain"),),  # evidence: asked for tcp, the Go plugin listens on unix
        (ours, "plaintext"): (ok("plain"),),
        (ours, "AutoMTLS"): (ok("automtls"),),
        (ours + cb, "unix"): (ob("plain"), ob("automtls")),
        (ours + cb, "tcp"): (ok("plain"),),
        (ours + cb, "plaintext"): (ob("plain"),),
        (ours + cb, "AutoMTLS"): (ob("automtls"),),
        (host, MUX): (mux("plain"), mux("automtls")),
        (host + cb, MUX): tuple(bh(cell, "multiplexed") for cell in (*unix_cells, *tcp_cells)),
        (ours, MUX): (ob("plain", "multiplexed"), ob("automtls", "multiplexed")),
        (ours + cb, MUX): (ob("plain", "multiplexed"), ob("automtls", "multiplexed")),
        (host, "1 MiB Put/Get"): tuple(map(kv, (*unix_cells, *tcp_cells))),
        (host, "ping"): (kv("unix-plain"), kv("tcp-automtls")),
        (host, "graceful shutdown"): (kv("unix-plain"), kv("tcp-automtls")),
        (host, "two versions"): (f"{H18}test_version_negotiation[1,2-{flavour}]",
                                 f"{H18}test_version_negotiation[2,1-{flavour}]"),
        (host, "wrong cookie"): (f"{H18}test_refused_start[wrong-cookie-{flavour}]",),
        (ours, "1 MiB Put/Get"): (ok("plain"), ok("automtls")),
        (ours, "ping"): (ok("plain"), ok("automtls")),
        (ours, "graceful shutdown"): (ok("plain"), ok("automtls")),
        (ours, "two versions"): (f"{O18}test_version_negotiation[1,2-{flavour}]",
                                 f"{O18}test_version_negotiation[2,1-{flavour}]"),
        (ours, "wrong cookie"): (f"{O18}test_wrong_cookie[{flavour}]",),
    }  # fmt: skip


for _version, _flavour in GO_PLUGIN_MODULES.items():
    MATRIX.update(_go_module_cells(_version, _flavour))

# --- Terraform-protocol hosts with the pyecho provider, real providers under our host ---
TFP = "tests/terraform/test_terraform_provider.py::"
TP = "tests/interop/test_terraform_providers.py::"
for _host, _binary in (
    ("Terraform 1.11.4 (go-plugin 1.6.0) → our provider", "terraform"),
    ("OpenTofu 1.12.6 (go-plugin 1.7.0) → our provider", "tofu"),
):
    _tls = f"{TFP}test_plan_apply_update_destroy_over_automtls[{_binary}]"
    MATRIX.update({
        (_host, MUX): (),
        (_host, "unix"): (_tls, f"{TFP}test_import_an_existing_file[{_binary}]"),
        (_host, "tcp"): (),
        (_host, "plaintext"): (f"{TFP}test_plugin_tls_turned_off[{_binary}]",),
        (_host, "AutoMTLS"): (_tls, f"{TFP}test_changing_the_path_replaces_the_file[{_binary}]"),
    })  # fmt: skip
RANDOM = "our host → terraform-provider-random, protocol 5 (go-plugin 1.7.0)"
LOCAL = "our host → terraform-provider-local, protocol 5 (go-plugin 1.7.0)"
ECHO6 = "our host → terraform-plugin-framework provider, protocol 6 (go-plugin 1.7.0)"
_random = TP + "test_random_string_plan_apply_read_destroy"
MATRIX.update({
    (RANDOM, MUX): (),
    (LOCAL, MUX): (),
    (ECHO6, MUX): (),
    (RANDOM, "unix"): (_random + "[automtls]", TP + "test_random_integer_is_seeded_and_in_range"),
    (RANDOM, "tcp"): (),
    (RANDOM, "plaintext"): (_random + "[plain]",),
    (RANDOM, "AutoMTLS"): (_random + "[automtls]",
                           TP + "test_random_rejects_an_invalid_value_with_its_diagnostic"),
    (LOCAL, "unix"): (TP + "test_local_file_writes_reads_and_removes_the_file",),
    (LOCAL, "tcp"): (),
    (LOCAL, "plaintext"): (),
    (LOCAL, "AutoMTLS"): (TP + "test_local_file_writes_reads_and_removes_the_file",),
    (ECHO6, "unix"): (TP + "test_protocol_6_framework_provider[automtls]",),
    (ECHO6, "tcp"): (),
    (ECHO6, "plaintext"): (TP + "test_protocol_6_framework_provider[plain]",),
    (ECHO6, "AutoMTLS"): (TP + "test_protocol_6_framework_provider[automtls]",),
})  # fmt: skip

# Runs in a subprocess: collect tests/interop and tests/terraform, report every node
# and its xfail mark.
_COLLECT = textwrap.dedent(
    """
    import json, sys
    import pytest

    class Recorder:
        def __init__(self):
            self.nodes = {}

        def pytest_collection_modifyitems(self, items):
            for item in items:
                mark = item.get_closest_marker("xfail")
                state = None
                if mark is not None:
                    state = "strict" if mark.kwargs.get("strict") else "lenient"
                self.nodes[item.nodeid] = state

    recorder = Recorder()
    code = pytest.main(
        ["--collect-only", "-q", "-p", "no:cacheprovider", "tests/interop", "tests/terraform"],
        plugins=[recorder],
    )
    print("NODES " + json.dumps(recorder.nodes))
    sys.exit(int(code))
    """
)

Table = dict[str, dict[str, str]]  # row -> column -> cell text


def parse_tables(markdown: str) -> list[tuple[list[str], Table]]:
    """Every pipe table in ``markdown``: (columns after the first, {row: {column: cell}})."""
    tables: list[tuple[list[str], Table]] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        is_table = i + 1 < len(lines) and lines[i].startswith("|")
        if is_table and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
            header = _cells(lines[i])
            rows: Table = {}
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = _cells(lines[i])
                assert len(cells) == len(header), f"ragged table row: {lines[i]!r}"
                rows[cells[0]] = dict(zip(header[1:], cells[1:], strict=True))
                i += 1
            tables.append((header[1:], rows))
        else:
            i += 1
    return tables


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


@pytest.fixture(scope="module")
def collected() -> dict[str, str | None]:
    """node id -> None, "strict" or "lenient" (its xfail mark), for tests/interop and
    tests/terraform."""
    result = subprocess.run(
        [sys.executable, "-c", _COLLECT],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTEST_ADDOPTS": ""},
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("NODES ")]
    assert result.returncode == 0 and lines, (
        f"collecting tests/interop failed ({result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    nodes: dict[str, str | None] = json.loads(lines[-1].removeprefix("NODES "))
    return nodes


def doc_tables() -> list[tuple[list[str], Table]]:
    return parse_tables(DOC.read_text(encoding="utf-8"))


def doc_claims() -> dict[tuple[str, str], tuple[str, str]]:
    """(row, column) -> (claim, the row's notes), from the two main tables of the page."""
    claims: dict[tuple[str, str], tuple[str, str]] = {}
    for columns, rows in doc_tables():
        if columns[-1:] != ["notes"] or tuple(columns[:-1]) not in (
            TRANSPORT_COLUMNS,
            CHECK_COLUMNS,
        ):
            continue  # the short version, or another table
        for row, cells in rows.items():
            for column in columns[:-1]:
                claims[row, column] = (cells[column], cells["notes"])
    return claims


@pytest.mark.timeout(30)
def test_table_parser() -> None:
    text = "x\n| a | b | notes |\n|---|:-:|---|\n| r1 | yes | why |\n| r2 |  n/a  | |\n"
    assert parse_tables(text) == [
        (["b", "notes"], {"r1": {"b": "yes", "notes": "why"}, "r2": {"b": "n/a", "notes": ""}})
    ]


@pytest.mark.timeout(30)
def test_doc_tables_cover_exactly_the_matrix() -> None:
    claims = doc_claims()
    assert set(claims) == set(MATRIX), (
        f"in the page, not in MATRIX: {sorted(set(claims) - set(MATRIX))}\n"
        f"in MATRIX, not in the page: {sorted(set(MATRIX) - set(claims))}"
    )
    bad = {cell: claim for cell, (claim, _) in claims.items() if claim not in CLAIMS}
    assert not bad, f"cells must say one of {CLAIMS}: {bad}"


@pytest.mark.timeout(120)
def test_every_claim_is_backed_by_the_tests(collected: dict[str, str | None]) -> None:
    problems = []
    for (row, column), (claim, notes) in sorted(doc_claims().items()):
        nodes = MATRIX.get((row, column), ())
        where = f"{row} / {column}: {claim!r}"
        missing = [node for node in nodes if node not in collected]
        if missing:
            problems.append(f"{where}: no such test {missing}")
            continue
        marks = {node: collected[node] for node in nodes}
        if claim == "yes":
            if not nodes:
                problems.append(f"{where}: no test behind it")
            xfailing = [node for node, mark in marks.items() if mark is not None]
            if xfailing:
                problems.append(f"{where}: these are xfail, say 'pending': {xfailing}")
        elif claim == "pending":
            if not nodes:
                problems.append(f"{where}: no expected-failure test behind it")
            not_strict = [node for node, mark in marks.items() if mark != "strict"]
            if not_strict:
                problems.append(
                    f"{where}: not (or no longer) xfail(strict=True): {not_strict}; "
                    "if it works now, say 'yes'"
                )
        elif claim == "n/a":
            if not notes:
                problems.append(f"{where}: an n/a cell needs a reason in the notes")
            xfailing = [node for node, mark in marks.items() if mark is not None]
            if xfailing:
                problems.append(f"{where}: evidence tests must pass, not xfail: {xfailing}")
        elif claim == "not tested" and nodes:
            problems.append(f"{where}: tests exist ({list(nodes)}), say what they show")
    assert not problems, "docs/compatibility.md disagrees with the tests:\n" + "\n".join(problems)


def short_tables(markdown: str) -> list[Table]:
    """Tables whose columns are exactly the transport columns (the README's short version)."""
    return [rows for columns, rows in parse_tables(markdown) if tuple(columns) == TRANSPORT_COLUMNS]


@pytest.mark.timeout(30)
def test_short_version_in_the_page_matches_its_table() -> None:
    claims = doc_claims()
    shorts = short_tables(DOC.read_text(encoding="utf-8"))
    assert len(shorts) == 1, "docs/compatibility.md needs exactly one short (README) table"
    for row, cells in shorts[0].items():
        for column in TRANSPORT_COLUMNS:
            assert (row, column) in claims, f"unknown row {row!r} in the short table"
            assert cells[column] == claims[row, column][0], (row, column)
    assert {(row, c) for row in shorts[0] for c in TRANSPORT_COLUMNS} == {
        cell for cell in claims if cell[1] in TRANSPORT_COLUMNS
    }


@pytest.mark.timeout(30)
def test_readme_table_matches_the_page() -> None:
    readme = README.read_text(encoding="utf-8")
    shorts = short_tables(readme)
    if not shorts:
        pytest.skip(
            "README.md has no compatibility table yet (copy the short version from "
            "docs/compatibility.md)"
        )
    expected = short_tables(DOC.read_text(encoding="utf-8"))[0]
    assert shorts == [expected], (
        "README.md's compatibility table differs from the short version in "
        "docs/compatibility.md; copy it again"
    )
