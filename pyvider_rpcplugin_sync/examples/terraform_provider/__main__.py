"""``python -m pyvider_rpcplugin_sync.examples.terraform_provider``.

- no arguments: serve the provider (what Terraform runs, via the launcher);
- ``--debug``: serve unmanaged and print ``TF_REATTACH_PROVIDERS``;
- ``install DIR``: write the launcher into DIR and a CLI config beside it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pyvider_rpcplugin_sync import run_plugin

from .crash import CallReporter
from .launcher import cli_config, write_launcher
from .provider import TF_HANDSHAKE, register
from .schema import PROVIDER_ADDRESS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="terraform-provider-pyecho", description="The pyecho Terraform provider."
    )
    parser.add_argument(
        "--debug", action="store_true", help="serve unmanaged; print TF_REATTACH_PROVIDERS"
    )
    commands = parser.add_subparsers(dest="command")
    install = commands.add_parser("install", help="write the launcher and a CLI config")
    install.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    if args.command == "install":
        launcher = write_launcher(args.directory.resolve())
        config = launcher.parent / "terraform.rc"
        config.write_text(cli_config(launcher.parent), encoding="utf-8")
        print(f"wrote {launcher}\nnow: export TF_CLI_CONFIG_FILE={config}")
        return 0
    return run_plugin(
        {6: register},
        handshake=TF_HANDSHAKE,
        interceptors=[CallReporter()],
        debug=args.debug,
        debug_name=PROVIDER_ADDRESS,
    )


if __name__ == "__main__":
    sys.exit(main())
