from promptver.cli import main

raise SystemExit(main())
