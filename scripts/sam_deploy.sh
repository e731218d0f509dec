#!/usr/bin/env bash
# Build and deploy one samconfig.toml environment (what `make build` / `make deploy` run).
#
#   scripts/sam_deploy.sh [--build-only | --offline] [ENV]      ENV: dev (default) | prod | ...
#
# - builds with the Lambda runtime's Python (scripts/sam_build.sh) for the environment's
#   Architecture (samconfig's parameter_overrides; x86_64 when unset), so that the code
#   built and the functions deployed are always the same architecture;
# - deploys with `sam deploy --config-env <env>`, guided (asks for every parameter, saves
#   the answers to samconfig.toml) when samconfig.toml names no stack for the environment
#   or GUIDED=1;
# - --offline stops where AWS would be needed: it translates and lints the BUILT template
#   (what `sam package` would upload, code paths and all) and prints the deploy command.
# Env: SAM (the SAM CLI), GUIDED=1, ARCH (only for an environment samconfig does not
# configure yet), BUILD_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
SAM="${SAM:-.venv-sam/bin/sam}"
BUILD_DIR="${BUILD_DIR:-.aws-sam/build}"
export SAM_CLI_TELEMETRY=0

mode=deploy
case "${1:-}" in
  --build-only) mode=build; shift ;;
  --offline) mode=offline; shift ;;
esac
ENV="${1:-dev}"
case "$ENV" in
  *[!a-zA-Z0-9_-]* | "") echo "sam_deploy: ENV must be a samconfig environment name, not '$ENV'" >&2; exit 2 ;;
esac

PYTHON="$(scripts/find_python.sh 3.12)" # any 3.11+ reads TOML
samconfig() { "$PYTHON" scripts/samconfig_env.py "$ENV" "$@"; }
CONFIG_ENV="$(samconfig config_env)"
STACK="$(samconfig stack_name)"
CONFIGURED_ARCH="$(samconfig parameter Architecture)"
if [ -n "$CONFIGURED_ARCH" ] && [ -n "${ARCH:-}" ] && [ "$ARCH" != "$CONFIGURED_ARCH" ]; then
  echo "sam_deploy: samconfig.toml deploys $ENV as $CONFIGURED_ARCH; change Architecture there, not with ARCH=$ARCH" >&2
  exit 2
fi
ARCH="${CONFIGURED_ARCH:-${ARCH:-x86_64}}"
case "$ARCH" in x86_64 | arm64) ;; *) echo "sam_deploy: Architecture must be x86_64 or arm64, not $ARCH" >&2; exit 2 ;; esac

config_args=()
grep -q "^\[$CONFIG_ENV\." samconfig.toml && config_args=(--config-env "$CONFIG_ENV")
echo "sam_deploy: environment $ENV (samconfig: ${config_args[1]:-none}), stack ${STACK:-not configured}, $ARCH"
scripts/sam_build.sh "${config_args[@]}" --build-dir "$BUILD_DIR" --parameter-overrides "Architecture=$ARCH"

guided=()
if [ -z "$STACK" ] || [ "${GUIDED:-0}" = 1 ]; then
  guided=(--guided)
fi
deploy=("$SAM" deploy --template-file "$BUILD_DIR/template.yaml" --config-env "$CONFIG_ENV" "${guided[@]}")
if [ -n "${guided[*]}" ] && [ -z "$CONFIGURED_ARCH" ]; then
  # The guided prompts offer this as the answer (and save it); on the command line it
  # would replace samconfig's whole list, so only for an environment without one.
  deploy+=(--parameter-overrides "Architecture=$ARCH")
  echo "sam_deploy: keep Architecture=$ARCH when asked (the code was built for it)"
fi

case "$mode" in
  build) exit 0 ;;
  deploy) exec "${deploy[@]}" ;;
esac
# --offline: everything `sam deploy` would check before the first AWS call.
BIN_DIR="$(dirname "${PY:-.venv/bin/python}")"
TRANSLATED="$BUILD_DIR/../translated-built.json"
"$BIN_DIR/python" scripts/sam_translate.py "$BUILD_DIR/template.yaml" -o "$TRANSLATED"
"$BIN_DIR/cfn-lint" -i W1020 -- "$TRANSLATED"
"$BIN_DIR/python" scripts/built_sizes.py "$BUILD_DIR/template.yaml" --parameter "Architecture=$ARCH"
echo "sam_deploy: offline checks passed; would run: ${deploy[*]}"
