"""``python -m photocap.gui``; also the PyInstaller entry script (packaging/photocap-gui.spec)."""

import sys

from photocap.gui.app import main

sys.exit(main())
