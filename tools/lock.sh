#!/usr/bin/env bash
# Re-pin constraints.txt: install the newest versions requirements.txt allows into a fresh
# virtual environment and freeze them. Run the tests afterwards before committing the result.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
grep -v '^-c ' requirements.txt > "$tmp/requirements.txt"   # without the current pins
"$tmp/venv/bin/python" -m pip install -q -r "$tmp/requirements.txt"
{
  echo "# Exact versions the suite passes with (CI and the README install use them through requirements.txt)."
  echo "# Regenerate with tools/lock.sh after changing requirements.txt, then run the tests."
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
