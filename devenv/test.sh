#!/usr/bin/env bash
# The README's test command: installs what is missing, then type check, lint, unit and
# integration suites, then the fault-injection suite. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/go/bin"
start=$(date +%s)
devenv/setup.sh >/dev/null
# shellcheck source=devenv/node-env.sh
source devenv/node-env.sh
echo "[test] setup done in $(( $(date +%s) - start )) s"
npm run -s typecheck
npm run -s lint
npx vitest run --project unit
report=$(mktemp)
trap 'rm -f "$report" "$report.faults"' EXIT
npx vitest run --project integration --reporter=default --reporter=json --outputFile.json="$report"
npx vitest run --project faults --reporter=default --reporter=json --outputFile.json="$report.faults"
npx tsx devenv/count-dataplane-tests.ts "$report" "$report.faults"
echo "[test] all suites done in $(( $(date +%s) - start )) s"
