from mlxbench.cli import main

raise SystemExit(main())
