"""`python -m keras_ssgd`: the same as the `ssgd-train` command."""

import sys

from keras_ssgd.train.cli import main

sys.exit(main())
