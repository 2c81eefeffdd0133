"""`python -m dainctl` is the same as the `dainctl` command."""

from .cli import main

raise SystemExit(main())
