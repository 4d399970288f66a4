import sys

from lightning_nas.blackbox.cli import main

sys.exit(main())
