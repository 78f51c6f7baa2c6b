"""``python -m embguard``: the same CLI as the ``embguard`` command."""

from embguard.cli import main

if __name__ == "__main__":
    main()
