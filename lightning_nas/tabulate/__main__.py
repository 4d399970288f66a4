import sys

from lightning_nas.tabulate.run import main

sys.exit(main())
