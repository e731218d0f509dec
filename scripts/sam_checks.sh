#!/usr/bin/env bash
# Offline proof of the SAM application (nothing here talks to AWS):
#   1. cfn-lint on template.yaml
#   2. aws-sam-translator -> CloudFormation JSON, checked for dependency cycles, and
#      cfn-lint on that too (cfn-lint does not expand SAM: a cycle made by SAM's expansion
#      passes it on the source and fails only at deploy)
#   3. sam validate --lint, for the default (dev) and prod configurations
#   4. what `make deploy` does before it needs AWS (scripts/sam_deploy.sh --offline):
#      sam build with the runtime's Python (scripts/find_python.sh), the built template
#      translated and linted, built sizes against Lambda's limits
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

step "make build + the offline part of make deploy (dev): sam build with the runtime's Python, translate + lint the built template, sizes"
build_started=$(seconds)
SAM="$SAM" PY="$PY" BUILD_DIR="$BUILD_DIR" scripts/sam_deploy.sh --offline dev
echo "build and offline deploy checks took $(($(seconds) - build_started)) s"
RUNTIME_PYTHON="$(scripts/find_python.sh --exact 3.12)"
# soundfile's manylinux wheel must have brought libsndfile into the audio layer.
ls "$BUILD_DIR"/AudioLayer/python/_soundfile_data/libsndfile*.so >/dev/null
test ! -e "$BUILD_DIR"/ApiDepsLayer/python/numpy
test ! -e "$BUILD_DIR"/ApiFunction/numpy

step "tests/sam: built functions, from the build output alone, against moto's server"
AUDIOLIFT_SAM_BUILD_DIR="$PWD/$BUILD_DIR" AUDIOLIFT_RUNTIME_PYTHON="$RUNTIME_PYTHON" \
  "$BIN_DIR/pytest" -q -p no:cacheprovider tests/sam ${PYTEST_ARGS:-}

echo "sam_checks: all passed in $(($(seconds) - started)) s"
