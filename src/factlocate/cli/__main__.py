import sys

from factlocate.cli import main

sys.exit(main())
