import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))
os.environ.setdefault("DSMIL_LIBDBE", str(ROOT / "bin" / "libdbe.so"))
