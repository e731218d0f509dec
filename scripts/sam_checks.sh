#!/usr/bin/env bash
# Offline proof of the SAM application (nothing here talks to AWS):
#   1. cfn-lint on template.yaml
#   2. aws-sam-translator -> CloudFormation JSON, checked for dependency cycles, and
#      cfn-lint on that too (cfn-lint does not expand SAM: a cycle made by SAM's expansion
#      passes it on the source and fails only at deploy)
#   3. sam validate --lint, for the default (dev) and prod configurations
#   4. sam build with the runtime's Python (python3.12 on PATH for this step only)
#   5. tests/sam: the built functions, from the build output alone, against moto's server
# Run from anywhere; CI runs it from the repo root. Env: PY (the dev venv's python),
# SAM (the SAM CLI), PYTEST_ARGS (extra pytest arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"
SAM="${SAM:-.venv-sam/bin/sam}"
BIN_DIR="$(dirname "$PY")"
BUILD_DIR=.aws-sam/build
TRANSLATED=.aws-sam/translated.json
export SAM_CLI_TELEMETRY=0 # no telemetry calls from an offline machine
# W1020 ("Sub not needed"): the translator itself resolves parameter defaults into some
# generated names (e.g. layer names); nothing to fix in our source.
TRANSLATED_IGNORES=(-i W1020)

step() { printf '\n== %s\n' "$*"; }
seconds() { date +%s; }
started=$(seconds)

step "cfn-lint template.yaml"
"$BIN_DIR/cfn-lint" template.yaml

step "translate SAM -> CloudFormation (aws-sam-translator), cycle check"
"$PY" scripts/sam_translate.py template.yaml -o "$TRANSLATED"

step "cfn-lint the translated template"
"$BIN_DIR/cfn-lint" "${TRANSLATED_IGNORES[@]}" -- "$TRANSLATED"

for config_env in default prod; do
  step "sam validate --lint --config-env $config_env"
  "$SAM" validate --lint --config-env "$config_env"
done

# The runtime's interpreter: a real python3.12 (pyenv's shims exist for versions that are
# not selected and then fail, so every candidate is run before it is trusted).
find_runtime_python() {
  local candidates=() root p
  if command -v pyenv >/dev/null 2>&1; then
    root="$(pyenv root)"
    for p in $(ls -d "$root"/versions/3.12.*/bin 2>/dev/null | sort -V -r); do
      candidates+=("$p/python3.12")
    done
  fi
  candidates+=("$(command -v python3.12 2>/dev/null || true)" /usr/local/bin/python3.12 /usr/bin/python3.12)
  for p in "${candidates[@]}"; do
    [ -n "$p" ] && [ -x "$p" ] || continue
    if "$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1; then
      echo "$p"
      return 0
    fi
  done
  echo "sam_checks: no working python3.12 (the Lambda runtime's version); install one, e.g. pyenv install 3.12" >&2
  return 1
}
RUNTIME_PYTHON="$(find_runtime_python)"
RUNTIME_DIR="$(dirname "$RUNTIME_PYTHON")"
"$RUNTIME_PYTHON" -m pip --version >/dev/null # sam build's pip workflow needs it

step "sam build (python3.12 from $RUNTIME_DIR)"
build_started=$(seconds)
PATH="$RUNTIME_DIR:$PATH" "$SAM" build --cached --parallel --build-dir "$BUILD_DIR"
echo "sam build took $(($(seconds) - build_started)) s"
# soundfile's manylinux wheel must have brought libsndfile into the audio layer.
ls "$BUILD_DIR"/AudioLayer/python/_soundfile_data/libsndfile*.so >/dev/null
test ! -e "$BUILD_DIR"/ApiDepsLayer/python/numpy
test ! -e "$BUILD_DIR"/ApiFunction/numpy

step "tests/sam: built functions, from the build output alone, against moto's server"
AUDIOLIFT_SAM_BUILD_DIR="$PWD/$BUILD_DIR" AUDIOLIFT_RUNTIME_PYTHON="$RUNTIME_PYTHON" \
  "$BIN_DIR/pytest" -q -p no:cacheprovider tests/sam ${PYTEST_ARGS:-}

echo "sam_checks: all passed in $(($(seconds) - started)) s"
