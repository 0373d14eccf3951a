"""Runs ``terraform plan`` with the conformance probe as provider ``example/probe``.

For ``conformance host --probe-name terraform-provider-probe -- python tf_host.py``:
the probe's directory (``$CONFORMANCE_PROBE_DIR``) becomes a ``dev_overrides``
entry, a one-line configuration uses the provider, and Terraform runs there.
Exit status: Terraform's (the probe implements no provider RPC, so it fails).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path


def main() -> int:
    probe_dir = Path(os.environ["CONFORMANCE_PROBE_DIR"])
    terraform = shutil.which("terraform")
    if terraform is None:
        print("terraform is not on PATH", file=sys.stderr)
        return 2
    work = probe_dir / "tf"
    work.mkdir(mode=0o700)
    (work / "terraform.rc").write_text(
        "provider_installation {\n"
        f'  dev_overrides {{ "example/probe" = "{probe_dir}" }}\n'
        "  direct {}\n"
        "}\n"
    )
    (work / "main.tf").write_text(
        'terraform {\n  required_providers {\n    probe = { source = "example/probe" }\n  }\n}\n'
        'provider "probe" {}\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PLUGIN_"))}
    env.update(
        TF_CLI_CONFIG_FILE=str(work / "terraform.rc"), CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1"
    )
    done = subprocess.run(
        [terraform, "plan", "-no-color", "-input=false"],
        cwd=work,
        env=env,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=60,
    )
    return done.returncode


if __name__ == "__main__":
    raise SystemExit(main())
