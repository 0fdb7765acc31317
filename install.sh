#!/usr/bin/env bash
# One command for a fresh machine: install into .venv, build the knowledge base from content/
# with the offline models, and answer a first question.
set -euo pipefail
cd "$(dirname "$0")"

python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -c constraints.txt -e ".[dev]"

.venv/bin/kb build
echo
echo '$ kb ask "东西坏了能退吗"'
.venv/bin/kb ask "东西坏了能退吗"
echo
echo "Ready. Activate the environment with:  source .venv/bin/activate"
