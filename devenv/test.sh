#!/usr/bin/env bash
# The README's test command: installs what is missing, then type check, lint, unit and
# integration suites, the fault-injection suite, and the HAProxy-facing suites once more on the
# newest HAProxy LTS (HAPROXY_SECOND_SERIES in devenv/versions.env). Exits non-zero on the first
# failure. The closing lines say which HAProxy each suite ran on, and count the Data Plane API tests.
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
trap 'rm -f "$report" "$report".*' EXIT
npx vitest run --project integration --reporter=default --reporter=json --outputFile.json="$report"
npx vitest run --project faults --reporter=default --reporter=json --outputFile.json="$report.faults"
reports=("default=$report" "default=$report.faults")

# The suites that exercise HAProxy itself (both drivers over it, its runtime API and reloads,
# draining, its exporter, the faults it suffers) run again on the newest LTS; the others (Docker,
# Prometheus, the stack, the admin API) only need one HAProxy. Skipped when the first pass already
# ran that series (HSC_HAPROXY_SERIES set to it).
haproxy_suites=(test/integration/{driver-contract,drain-under-load,scale-down,scale-down-crash,reconcile,runtime-driver,haproxy-metrics,convergence,rollout,recreate}.test.ts)
haproxy_faults=(test/faults/haproxy.test.ts)
if [ -n "${HSC_HAPROXY_BIN:-}" ] || [ "${HSC_HAPROXY_SERIES:-}" != "$HAPROXY_SECOND_SERIES" ]; then
  second_start=$(date +%s)
  # HSC_HAPROXY_BIN would win over the series (devenv/versions.ts haproxyBinary()).
  second=(env -u HSC_HAPROXY_BIN HSC_HAPROXY_SERIES="$HAPROXY_SECOND_SERIES")
  "${second[@]}" npx vitest run --project integration "${haproxy_suites[@]}" --reporter=default --reporter=json --outputFile.json="$report.second"
  "${second[@]}" npx vitest run --project faults "${haproxy_faults[@]}" --reporter=default --reporter=json --outputFile.json="$report.second-faults"
  reports+=("$HAPROXY_SECOND_SERIES=$report.second" "$HAPROXY_SECOND_SERIES=$report.second-faults")
  echo "[test] HAProxy-facing suites on HAProxy $HAPROXY_SECOND_SERIES done in $(( $(date +%s) - second_start )) s"
fi

npx tsx devenv/test-summary.ts "${reports[@]}"
npx tsx devenv/count-dataplane-tests.ts "${reports[@]#*=}"
echo "[test] all suites done in $(( $(date +%s) - start )) s"
