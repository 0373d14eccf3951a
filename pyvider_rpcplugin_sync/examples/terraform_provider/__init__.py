"""pyecho: a Terraform provider (protocol 6) in sync Python, served by this library.

Run ``python -m pyvider_rpcplugin_sync.examples.terraform_provider install DIR``
and point ``TF_CLI_CONFIG_FILE`` at the config it writes; docs/terraform.md
walks through it. Needs the ``terraform`` extra (msgpack).
"""
