#!/usr/bin/env bash
# Print the path of a working CPython.
#
#   scripts/find_python.sh 3.12           3.12, else 3.13 (the development venvs)
#   scripts/find_python.sh --exact 3.12   3.12 only (sam build: the Lambda runtime's version)
#
# pyenv's shims exist for versions that are not selected and then fail ("pyenv:
# python3.12: command not found"), so pyenv's own version directories are searched as
# well as PATH, and each candidate is run once before it is trusted.
set -u
exact=0
if [ "${1:-}" = "--exact" ]; then
  exact=1
  shift
fi
want="${1:-3.12}"
versions=("$want")
[ "$exact" = 1 ] || versions+=(3.12 3.13)
candidates=()
for v in "${versions[@]}"; do
  if command -v pyenv >/dev/null 2>&1; then
    root=$(pyenv root 2>/dev/null)
    # Newest patch release first.
    while IFS= read -r dir; do
      candidates+=("$dir/bin/python$v")
    done < <(ls -d "$root"/versions/"$v".* 2>/dev/null | sort -V -r)
  fi
  candidates+=("$(command -v "python$v" 2>/dev/null)")
  for p in /usr/local/bin/python"$v" /usr/bin/python"$v"; do candidates+=("$p"); done
done
if [ "$exact" = 1 ]; then
  check="import sys, venv; assert '%d.%d' % sys.version_info[:2] == '$want'"
else
  check="import sys, venv; assert sys.version_info >= (3, 12)"
fi
for p in "${candidates[@]}"; do
  [ -n "$p" ] && [ -x "$p" ] || continue
  if "$p" -c "$check" >/dev/null 2>&1; then
    echo "$p"
    exit 0
  fi
done
if [ "$exact" = 1 ]; then
  echo "find_python: no working python$want (the Lambda runtime's version); install it, e.g. pyenv install $want" >&2
else
  echo "find_python: no Python 3.12 or 3.13 found (install one, e.g. with pyenv)" >&2
fi
exit 1
