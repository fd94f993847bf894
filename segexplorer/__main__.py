import sys

from segexplorer.cli import main

sys.exit(main())
