"""Stands in for ansible-test's get-pip bootstrap script where its download host is out of reach.

ansible-test runs it in a new virtualenv with pip's install arguments: put
the interpreter's bundled pip in place, then let it install what was asked
(the pinned pip) from the configured index.
"""

import runpy
import subprocess
import sys

subprocess.check_call([sys.executable, "-m", "ensurepip", "--default-pip"], stdout=subprocess.DEVNULL)
# get-pip's own options: install nothing more than asked.
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", *args]
runpy.run_module("pip", run_name="__main__", alter_sys=True)
