"""`python -m lynkr.cli …` is `lynkr …`."""
from lynkr.cli import main

raise SystemExit(main())
