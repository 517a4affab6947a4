from cgexplain.cli import main

raise SystemExit(main())
