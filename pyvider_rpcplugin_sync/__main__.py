"""``python -m pyvider_rpcplugin_sync``: the command line (see ``_cli``)."""

from ._cli import main

raise SystemExit(main())
