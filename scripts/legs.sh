# Sourced by the test and install scripts: find_python X.Y prints an interpreter of that version (a pythonX.Y on
# PATH, else pyenv's), or fails saying how to provide one. PYTHON_X_Y (e.g. PYTHON_3_10=/usr/bin/python3.10)
# overrides the search.
find_python() {
  local want=$1 var="PYTHON_${1//./_}" candidate
  if [ -n "${!var:-}" ]; then echo "${!var}"; return 0; fi
  for candidate in "python$want" $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$want".*/bin/python"$want" 2>/dev/null | sort -V -r); do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != tuple(map(int, '$want'.split('.'))))" 2>/dev/null; then
      command -v "$candidate"; return 0
    fi
  done
  echo "error: Python $want is needed. Install it (e.g. apt-get install python$want python$want-venv, or pyenv install $want) or set $var=/path/to/python$want" >&2
  return 1
}
main_python() { find_python 3.11; }   # the PyPI ROS 2 Kilted wheels are cp311
jazzy_python() { find_python 3.10; }  # Humble's interpreter version; PyPI's Jazzy wheels exist for cp310
quiet() {  # run a pip command, hiding only its notes on absent local index folders; keep its exit status
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  grep -v '^WARNING: Location' <<<"$out" || true
  return $rc
}
