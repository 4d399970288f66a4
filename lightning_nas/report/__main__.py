import sys

from lightning_nas.report.build import main

sys.exit(main())
