#!/usr/bin/env bash
# Installs what the browser client and its tests need; safe to run again.
#  - Debian's chromium and chromium-driver (apt; Playwright's own browser downloads are
#    not used: the tests launch /usr/bin/chromium).
#  - Playwright for Python into the project's venv (the driver only, no browsers).
#  - the page's npm packages (hash-wasm, Uppy for the Companion example, esbuild) from
#    clients/web/package-lock.json, and the bundles in clients/web/dist/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv_python="${VENV_PYTHON:-$root/.venv/bin/python}"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

apt_packages=()
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
command -v chromedriver >/dev/null 2>&1 || apt_packages+=(chromium-driver)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || apt_packages+=(fonts-dejavu-core)
# A node from elsewhere (e.g. nodesource) brings its own npm; Debian's npm would conflict.
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        "${apt_packages[@]}"
fi

if [ -x "$venv_python" ] && ! "$venv_python" -c "import playwright" >/dev/null 2>&1; then
    "$venv_python" -m pip install --quiet "playwright>=1.45"
fi

cd "$root/clients/web"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
    npm ci --no-audit --no-fund
fi
npm run --silent build
