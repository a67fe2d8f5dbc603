"""``python -m hfdeploy``: the same CLI as the ``hfdeploy`` command."""

from hfdeploy.cli.main import main

main()
