#!/usr/bin/env bash
# `sam build` with the Lambda runtime's Python on PATH for this command only.
#
#   scripts/sam_build.sh [sam build arguments...]
#
# The runtime's version comes from template.yaml (every function's Runtime), the
# interpreter from scripts/find_python.sh --exact: sam build's Python workflow runs
# `python3.12` from PATH, and pyenv's shim for an unselected version fails with
# "pyenv: python3.12: command not found". Env: SAM (the SAM CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
SAM="${SAM:-.venv-sam/bin/sam}"
export SAM_CLI_TELEMETRY=0

mapfile -t runtimes < <(sed -n 's/^ *\(Runtime\|BuildMethod\): python\([0-9][0-9.]*\).*/\2/p' template.yaml | sort -u)
if [ "${#runtimes[@]}" -ne 1 ]; then
  echo "sam_build: template.yaml must use one Python runtime, found: ${runtimes[*]:-none}" >&2
  exit 1
fi
RUNTIME_PYTHON="$(scripts/find_python.sh --exact "${runtimes[0]}")"
"$RUNTIME_PYTHON" -m pip --version >/dev/null # the pip workflow needs it
echo "sam_build: python${runtimes[0]} = $RUNTIME_PYTHON"
PATH="$(dirname "$RUNTIME_PYTHON"):$PATH" exec "$SAM" build "$@"
