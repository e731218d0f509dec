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
#   5. the same build for arm64 (aws-lambda-builders fetches the aarch64 manylinux wheels):
#      every native file's ELF header is AArch64, and the processor holds aarch64 builds
#      of numpy, scipy and libsndfile (scripts/check_elf_arch.py; the x86_64 build too)
#   6. tests/sam: the built functions, from the build output alone, against moto's server
# Run from anywhere; CI runs it from the repo root. Env: PY (the dev venv's python),
# SAM (the SAM CLI), PYTEST_ARGS (extra pytest arguments).
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PY:-.venv/bin/python}"
SAM="${SAM:-.venv-sam/bin/sam}"
BIN_DIR="$(dirname "$PY")"
BUILD_DIR=.aws-sam/build
ARM64_BUILD_DIR=.aws-sam/build-arm64
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
"$PY" scripts/check_elf_arch.py "$BUILD_DIR" x86_64

step "sam build for arm64 (Graviton) from this x86_64 machine: aarch64 wheels, ELF headers, sizes"
arm_started=$(seconds)
SAM="$SAM" scripts/sam_build.sh --cached --parallel --build-dir "$ARM64_BUILD_DIR" \
  --cache-dir .aws-sam/cache-arm64 --parameter-overrides Architecture=arm64
"$PY" scripts/check_elf_arch.py "$ARM64_BUILD_DIR" arm64
"$PY" scripts/built_sizes.py "$ARM64_BUILD_DIR/template.yaml" --parameter Architecture=arm64
echo "arm64 build and checks took $(($(seconds) - arm_started)) s"

step "tests/sam: built functions, from the build output alone, against moto's server"
AUDIOLIFT_SAM_BUILD_DIR="$PWD/$BUILD_DIR" AUDIOLIFT_RUNTIME_PYTHON="$RUNTIME_PYTHON" \
  "$BIN_DIR/pytest" -q -p no:cacheprovider tests/sam ${PYTEST_ARGS:-}

echo "sam_checks: all passed in $(($(seconds) - started)) s"
