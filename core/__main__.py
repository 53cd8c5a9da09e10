import os
import sys

# TensorFlow's C++ start-up chatter is not for clinicians; real errors still surface as our messages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from core.cli import main  # noqa: E402

sys.exit(main())
