#!/usr/bin/env bash
# Print the path of a working CPython 3.12 (the Lambda runtime's version), else 3.13.
# pyenv shims exist for versions that are not selected and then fail, so each candidate
# is run once before it is trusted.
set -u
want="${1:-3.12}"
candidates=()
for v in "$want" 3.12 3.13; do
  candidates+=("$(command -v "python$v" 2>/dev/null)")
  if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root 2>/dev/null)
    for p in "$root"/versions/"$v".*/bin/python"$v"; do candidates+=("$p"); done
  fi
  for p in /usr/local/bin/python"$v" /usr/bin/python"$v"; do candidates+=("$p"); done
done
for p in "${candidates[@]}"; do
  [ -n "$p" ] && [ -x "$p" ] || continue
  if "$p" -c 'import sys, venv; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; then
    echo "$p"; exit 0
  fi
done
echo "find_python: no Python 3.12 or 3.13 found (install one, e.g. with pyenv)" >&2
exit 1
