from retina.services.cli import main

raise SystemExit(main())
