"""The plugin battery's AutoMTLS run and its signals run (``plugin.check_plugin`` calls them).

AutoMTLS: the plugin gets a host certificate in ``PLUGIN_CLIENT_CERT`` and is
probed with Python's ``ssl``: with that certificate, with none, with a foreign
one, and in plaintext. Signals: SIGINT must be ignored, a closed stdin should
not matter, SIGTERM should end the plugin.
"""

from __future__ import annotations

import signal
import time
from typing import TYPE_CHECKING

from . import grpcprobe, h2, judge, tlsprobe
from .certs import make_cert, shape_of_der
from .line import LineError, decode_cert
from .model import judged, skipped
from .spawn import started

if TYPE_CHECKING:
    from .plugin import _Run  # pyright: ignore[reportPrivateUsage]  (its second half)

SHUTDOWN_GRACE = 2.0  # go-plugin's wait after Shutdown before SIGKILL
SIGNAL_HOLD = 0.5  # how long a plugin that ignores a signal must stay up


def tls_run(self: _Run) -> None:
    host, foreign = make_cert(), make_cert()
    with started(
        self.o.cmd, self.env(extra={"PLUGIN_CLIENT_CERT": host.cert_pem.decode()})
    ) as plugin:
        raw = self.line_of(plugin)
        result, parsed = judge.first_line(raw, None, plugin.stderr_text(), self.o.start_timeout)
        names = (
            "tls.cert",
            "tls.host_cert_accepted",
            "tls.requires_client_cert",
            "tls.rejects_foreign_cert",
            "tls.rejects_plaintext",
        )
        if parsed is None:
            for name in names:
                self.report.add(
                    skipped(
                        name,
                        "AutoMTLS",
                        f"no handshake with PLUGIN_CLIENT_CERT: {result.observed}",
                    )
                )
            return
        try:
            der = decode_cert(parsed.cert) if parsed.cert else b""
            cert_shape = shape_of_der(der) if der else None
        except (LineError, ValueError) as exc:
            der, cert_shape, why = b"", None, str(exc)
        else:
            why = "no certificate in field 6"
        problems = cert_shape.problems("server") if cert_shape else [why]
        self.report.add(
            judged(
                "tls.cert",
                "field 6: unpadded base64 DER, DNS:localhost",
                not problems,
                cert_shape.describe() if cert_shape and not problems else "; ".join(problems),
                "with PLUGIN_CLIENT_CERT, serve TLS with a self-signed localhost "
                "certificate and print it in field 6",
            )
        )
        if cert_shape is None:
            for name in names[1:]:
                self.report.add(skipped(name, "AutoMTLS", "no usable plugin certificate"))
            plugin.kill()
            return
        self.report.facts["plugin_cert"] = cert_shape.key
        n, a, t = parsed.network, parsed.address, self.o.call_timeout
        ok, how = tlsprobe.tls_answers(n, a, tlsprobe.client_context(der, host, self.workdir), t)
        self.report.add(
            judged(
                "tls.host_cert_accepted",
                "mTLS with the host's certificate works",
                ok,
                how,
                "trust the PLUGIN_CLIENT_CERT certificate as the client CA; offer ALPN h2",
            )
        )
        ok, how = tlsprobe.tls_answers(n, a, tlsprobe.client_context(der, None, self.workdir), t)
        self.report.add(
            judged(
                "tls.requires_client_cert",
                "a client without a certificate is refused",
                not ok,
                how,
                "require a client certificate (any local process could call the plugin otherwise)",
            )
        )
        ok, how = tlsprobe.tls_answers(n, a, tlsprobe.client_context(der, foreign, self.workdir), t)
        self.report.add(
            judged(
                "tls.rejects_foreign_cert",
                "a certificate other than the host's is refused",
                not ok,
                how,
                "verify the client certificate against PLUGIN_CLIENT_CERT only",
            )
        )
        answered = tlsprobe.plaintext_answers(n, a, t)
        self.report.add(
            judged(
                "tls.rejects_plaintext",
                "plaintext HTTP/2 is refused",
                not answered,
                "answered in plaintext" if answered else "refused",
                "serve only TLS once PLUGIN_CLIENT_CERT is set",
            )
        )
        try:
            sock = tlsprobe.tls_socket(n, a, tlsprobe.client_context(der, host, self.workdir), t)
        except OSError:
            return
        exchange = h2.unary_call(sock, grpcprobe.SHUTDOWN, SHUTDOWN_GRACE, scheme="https")
        if not exchange.trailers_only:  # served: let it exit (and remove its socket)
            plugin.wait(SHUTDOWN_GRACE)


def signals_run(self: _Run) -> None:
    with started(self.o.cmd, self.env(), stdin_pipe=True) as plugin:
        raw = self.line_of(plugin)
        result, parsed = judge.first_line(raw, None, plugin.stderr_text(), self.o.start_timeout)
        if parsed is None:
            for name in ("signal.sigint_ignored", "stdin.closed", "signal.sigterm"):
                self.report.add(skipped(name, "signals", result.observed))
            return
        ch = grpcprobe.channel(parsed.network, parsed.address)
        try:
            # Serving first (any answer will do): a go-plugin 1.0.1 plugin starts ignoring
            # SIGINT only after printing its line.
            grpcprobe.health(ch, "plugin", self.o.call_timeout)
            plugin.signal(signal.SIGINT)
            code = plugin.wait(SIGNAL_HOLD)
            self.report.add(
                judged(
                    "signal.sigint_ignored",
                    "SIGINT ignored (the host handles Ctrl-C)",
                    code is None,
                    "still running" if code is None else f"exit {code}",
                    "ignore SIGINT: a terminal's Ctrl-C reaches the plugin too, and the "
                    "host then shuts it down",
                )
            )
            if code is None:
                plugin.close_stdin()
                code = plugin.wait(SIGNAL_HOLD)
                self.report.add(
                    judged(
                        "stdin.closed",
                        "keeps serving when stdin closes",
                        code is None,
                        "still running" if code is None else f"exit {code}",
                        "do not read stdin: hosts pass theirs, often /dev/null",
                        required=False,
                    )
                )
            if code is None:
                sent = time.monotonic()
                plugin.signal(signal.SIGTERM)
                code = plugin.wait(SHUTDOWN_GRACE)
                self.report.add(
                    judged(
                        "signal.sigterm",
                        "SIGTERM: exit within 2 s",
                        code is not None,
                        f"exit {code} after {(time.monotonic() - sent) * 1000:.0f} ms"
                        if code is not None
                        else "still running",
                        "exit on SIGTERM (the default action is fine)",
                        required=False,
                    )
                )
        finally:
            ch.close()
