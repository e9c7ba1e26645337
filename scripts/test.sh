#!/usr/bin/env bash
# The test command of the README and of CI: every test leg in turn, each in its own environment (installed on
# first use), then per-leg counts and timing. Exits non-zero when any leg fails or runs no test (pytest's exit 5,
# or nothing passed). TEST_LEGS="jazzy" runs only the named legs; extra arguments run only the main leg, with
# those pytest arguments (each leg's script takes pytest arguments too: bash scripts/test_jazzy.sh -k bag).
set -uo pipefail
cd "$(dirname "$0")/.."
LEGS=(  # name, script: adding a leg is one line
  "main scripts/test_main.sh"
  "jazzy scripts/test_jazzy.sh"
  "py38 scripts/test_py38.sh"
)
if [ $# -gt 0 ]; then
  exec bash scripts/test_main.sh "$@"
fi
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
summary=() total=(0 0 0) failed_legs=0
for leg in "${LEGS[@]}"; do
  read -r name script <<<"$leg"
  if [ -n "${TEST_LEGS:-}" ] && [[ " $TEST_LEGS " != *" $name "* ]]; then continue; fi
  echo "======== leg $name: $script"
  start=$SECONDS
  PYTEST_ADDOPTS="${PYTEST_ADDOPTS:-} --junit-xml=$results/$name.xml" bash "$script"
  rc=$?
  seconds=$((SECONDS - start))
  # passed failed skipped, from pytest's JUnit report (absent if the leg failed before pytest ran)
  read -r passed failed skipped < <(python3 - "$results/$name.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print(0, 0, 0)
    raise SystemExit
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
print(n["tests"] - n["failures"] - n["errors"] - n["skipped"], n["failures"] + n["errors"], n["skipped"])
PY
)
  if [ "$rc" -eq 0 ] && [ "$passed" -gt 0 ]; then
    verdict=ok
  else
    failed_legs=$((failed_legs + 1))
    case $rc in
      0) verdict="FAILED: no test passed" ;;
      5) verdict="FAILED: pytest collected no test (exit 5)" ;;
      *) verdict="FAILED (exit $rc)" ;;
    esac
  fi
  summary+=("leg $name: $passed passed, $failed failed, $skipped skipped in ${seconds} s: $verdict")
  total=($((total[0] + passed)) $((total[1] + failed)) $((total[2] + skipped)))
done
echo "======== legs"
printf '%s\n' "${summary[@]}"
if [ ${#summary[@]} -eq 0 ]; then
  echo "no leg matches TEST_LEGS=${TEST_LEGS:-}" >&2
  exit 1
fi
echo "total: ${total[0]} passed, ${total[1]} failed, ${total[2]} skipped"
[ "$failed_legs" -eq 0 ]
