"""``python -m accord_cli``: the same as the ``accord`` command."""

from accord_cli import main

main()
