#!/usr/bin/env bash
# Builds static asyncqueue binaries for linux/amd64 and linux/arm64 into dist/ ($DIST), with
# SHA-256 checksums. The version and commit come from git and are embedded with -ldflags
# (`asyncqueue version` prints them). ARCHES="amd64" builds one architecture only.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}"
commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
dist="${DIST:-dist}"
rm -rf "$dist" && mkdir -p "$dist"
for arch in ${ARCHES:-amd64 arm64}; do
  out="$dist/asyncqueue-${version}-linux-${arch}"
  CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -trimpath \
    -ldflags "-s -w -X main.version=${version} -X main.commit=${commit}" -o "$out" .
  echo "built $out"
done
(cd "$dist" && sha256sum asyncqueue-* > SHA256SUMS)
cat "$dist/SHA256SUMS"
