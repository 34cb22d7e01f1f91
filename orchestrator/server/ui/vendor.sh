#!/usr/bin/env bash
# Reproduces the vendored graph layout library of the web UI: the browser ES-module build of
# @dagrejs/dagre (which bundles @dagrejs/graphlib) and both licences, copied from the npm registry's
# tarballs into static/vendor/. Run it to upgrade (set DAGRE_VERSION), then commit the output: the UI
# loads nothing from the network at run time, and `pip install` ships these files as package data.
set -euo pipefail
DAGRE_VERSION="${DAGRE_VERSION:-3.1.4}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent "@dagrejs/dagre@$DAGRE_VERSION" >/dev/null
tar xzf dagrejs-dagre-*.tgz && mv package dagre
graphlib_version="$(node -p "require('./dagre/package.json').dependencies['@dagrejs/graphlib']")"
npm pack --silent "@dagrejs/graphlib@$graphlib_version" >/dev/null
tar xzf dagrejs-graphlib-*.tgz && mv package graphlib
mkdir -p "$out"
# no sourceMappingURL: the map is not shipped, and a browser with devtools open would ask for it
grep -v '^//# sourceMappingURL=' dagre/dist/dagre.esm.js >"$out/dagre.esm.js"
cp dagre/LICENSE "$out/dagre.LICENSE"
cp graphlib/LICENSE "$out/graphlib.LICENSE"
printf '@dagrejs/dagre %s (bundles @dagrejs/graphlib %s), MIT; made by vendor.sh\n' \
  "$DAGRE_VERSION" "$graphlib_version" >"$out/VERSIONS"
echo "vendored @dagrejs/dagre $DAGRE_VERSION and @dagrejs/graphlib $graphlib_version into $out"
