"""The kit's pure parts: line parsing, certificate judging, verdicts, the report."""

from __future__ import annotations

import base64
import json
import socket
import threading

import pytest

from pyvider_rpcplugin_sync.conformance import h2, judge
from pyvider_rpcplugin_sync.conformance.certs import make_cert, shape_of_der, shape_of_pem
from pyvider_rpcplugin_sync.conformance.line import (
    LineError,
    decode_cert,
    legacy_fields,
    parse_line,
)
from pyvider_rpcplugin_sync.conformance.model import Report, failed, passed

pytestmark = pytest.mark.timeout(30)


def test_a_go_line_parses_with_its_trailing_empty_field() -> None:
    parsed = parse_line("1|1|unix|/tmp/plugin123|grpc|\n")
    assert (parsed.core, parsed.app_version, parsed.network, parsed.cert) == (1, 1, "unix", "")
    assert parsed.field_count == 6
    assert parse_line("1|6|tcp|127.0.0.1:10000|grpc|\r\n").address == "127.0.0.1:10000"


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("starting my plugin...", "fewer than 4"),
        ("2|1|unix|/s|grpc|", "core protocol version 2"),
        ("1|v1|unix|/s|grpc|", "app protocol version"),
        ("1|1|udp|/s|grpc|", "network 'udp'"),
        ("1|1|unix|/s", "netrpc"),
        ("1|1|unix|/s|netrpc|", "'netrpc'"),
        ("1| 1|unix|/s|grpc|", "app protocol version"),
    ],
)
def test_lines_go_hosts_refuse_are_refused(line: str, words: str) -> None:
    with pytest.raises(LineError, match=words):
        parse_line(line)


def test_an_old_host_glues_a_seventh_field_onto_the_certificate() -> None:
    assert legacy_fields("1|1|unix|/s|grpc||true")[5] == "|true"


def test_the_certificate_field_is_unpadded_standard_base64() -> None:
    pair = make_cert()
    field = base64.b64encode(pair.der).decode().rstrip("=")
    assert decode_cert(field) == pair.der
    with pytest.raises(LineError, match="padded"):
        decode_cert(base64.b64encode(b"12345").decode())
    with pytest.raises(LineError, match="outside standard base64"):
        decode_cert("ab-_")


def test_the_kit_makes_go_plugins_certificate_shape() -> None:
    pair = make_cert("P-521")
    shape = shape_of_der(pair.der)
    assert shape.key == "ECDSA P-521"
    assert shape.dns_names == ("localhost",)
    assert shape.is_ca and shape.server_auth and shape.client_auth
    assert shape.problems("server") == [] == shape_of_pem(pair.cert_pem).problems("client")


def test_a_certificate_without_localhost_cannot_serve() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "plugin")])
    import datetime

    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    shape = shape_of_der(cert.public_bytes(serialization.Encoding.DER))
    assert any("localhost" in problem for problem in shape.problems("server"))
    assert shape.problems("client") == []  # a client certificate's name is not checked


def test_cookie_refusal_verdicts() -> None:
    ok = judge.cookie_refusal(None, 1, "This binary is a plugin. These are not meant ...")
    assert [r.status for r in ok] == ["pass", "pass"]
    running = judge.cookie_refusal(None, None, "")
    assert [r.status for r in running] == ["fail", "fail"]
    served = judge.cookie_refusal("1|1|unix|/s|grpc|\n", 0, "")
    assert served[0].status == "fail" and "printed" in served[0].observed
    noisy = judge.cookie_refusal("my plugin 0.1\n", 1, "This binary is a plugin.")
    assert [r.status for r in noisy] == ["pass", "pass"]  # the noise is handshake.line's


def test_hclog_lines_with_a_number_for_a_message_fail() -> None:
    good = '{"@level":"info","@message":"hi","@timestamp":"2026-01-02T03:04:05.123456+00:00"}'
    assert judge.hclog_lines(good).status == "pass"
    assert judge.hclog_lines('{"@level":"info","@message":3}').status == "fail"
    short = '{"@level":"info","@message":"x","@timestamp":"2026-01-02T03:04:05.123Z"}'
    assert "six fractional" in judge.hclog_lines(short).observed
    assert judge.hclog_lines("plain text").status == "skip"


def test_shutdown_verdicts_from_frames() -> None:
    reply_first = h2.Exchange(
        [
            h2.Frame(h2.HEADERS, 4, 1, b""),
            h2.Frame(h2.DATA, 0, 1, b"x"),
            h2.Frame(h2.HEADERS, 5, 1, b""),
            h2.Frame(h2.GOAWAY, 0, 0, b""),
        ]
    )
    results = {r.check: r.status for r in judge.shutdown(reply_first, 0, 0.05)}
    assert results == {
        "controller.shutdown": "pass",
        "controller.reply_first": "pass",
        "exit.code": "pass",
    }
    goaway_first = h2.Exchange([h2.Frame(h2.GOAWAY, 0, 0, b""), h2.Frame(h2.DATA, 0, 1, b"x")])
    assert judge.shutdown(goaway_first, 0, 0.05)[1].status == "fail"
    refused = h2.Exchange([h2.Frame(h2.HEADERS, 5, 1, b"")])
    assert judge.shutdown(refused, None, 2.0)[0].status == "fail"


def test_optional_failures_do_not_change_the_exit_code() -> None:
    report = Report("plugin", ["x"])
    report.add(passed("a", "A"))
    report.add(failed("b", "B", "seen", "fix it", required=False))
    assert report.exit_code == 0
    report.add(failed("c", "C", "seen", "fix it"))
    assert report.exit_code == 1
    document = json.loads(report.to_json())
    assert document["counts"] == {"pass": 1, "fail": 1, "optional_fail": 1, "skip": 0, "info": 0}
    table = report.to_table()
    assert "FAIL (optional)" in table and "does NOT conform" in table and "hint: fix it" in table


def test_the_h2_client_records_frames_in_arrival_order() -> None:
    ours, theirs = socket.socketpair()

    def server() -> None:
        data = b""
        while len(data) < len(h2.PREFACE):
            data += theirs.recv(4096)
        theirs.sendall(
            h2.frame_bytes(h2.SETTINGS, 0, 0)
            + h2.frame_bytes(h2.GOAWAY, 0, 0, bytes(8))
            + h2.frame_bytes(h2.DATA, 0, 1, h2.EMPTY_MESSAGE)
        )
        theirs.close()

    thread = threading.Thread(target=server)
    thread.start()
    exchange = h2.unary_call(ours, "/plugin.GRPCController/Shutdown", 5.0)
    thread.join()
    assert [f.type for f in exchange.frames] == [h2.SETTINGS, h2.GOAWAY, h2.DATA]
    assert exchange.closed and exchange.goaway_index == 1 and exchange.reply_index == 2


def test_how_a_host_shows_the_probes_hclog_line() -> None:
    from pyvider_rpcplugin_sync.conformance.host import hclog_seen

    raw = '{"@level":"info","@message":"tok-1","@timestamp":"..."}'
    assert hclog_seen(f"x\n{raw}\n", "tok-1", [raw]) == "shown raw: not read as hclog"
    again = '{"@level":"info","@message":"tok-1","@module":"host.probe","@timestamp":"..."}'
    assert hclog_seen(again + "\n", "tok-1", [raw]).startswith("read as hclog")
    assert hclog_seen("[INFO]  plugin.probe: tok-1\n", "tok-1", [raw]).startswith("read as")
    assert hclog_seen("nothing\n", "tok-1", [raw]) == "not in the host's output"
