from ibkd.cli import main

raise SystemExit(main())
