#!/usr/bin/env bash
# The mutation campaign of tools/mutation.py (its docstring says how it works), at the lowest CPU
# priority. Not part of CI: the whole sample takes about an hour on 2 cores.
#
#   tools/mutation.sh run [MODULE...] [--retest] [--limit N]   run the mutants not run yet
#   tools/mutation.sh run --only ID... [--tests NODEID...]     rerun those mutants (with the test that kills them)
#   tools/mutation.sh list [MODULE...]                         the sample and each mutant's result
#   tools/mutation.sh report                                   write tools/mutation/REPORT.md
#
# PYTHON: the interpreter with the project's requirements (default: python3). The coverage
# package it needs for test selection is installed into .mutdeps on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -d .mutdeps/coverage ]; then
  "$PYTHON" -m pip install -q --target .mutdeps "coverage>=7.4"
  echo '*' > .mutdeps/.gitignore
fi
export PYTHONPATH=$PWD/.mutdeps${PYTHONPATH:+:$PYTHONPATH}
exec nice -n 19 "$PYTHON" tools/mutation.py "$@"
