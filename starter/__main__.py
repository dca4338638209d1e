"""``python -m starter <verb>``: the same command line as the ``billing`` script."""

from starter.cli import main

if __name__ == "__main__":
    main()
