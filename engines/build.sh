#!/usr/bin/env bash
# engines/build.sh (make engines) - build the real programs cutover's tests drive ("engines"),
# from source through the Go module proxy, into
#     ~/.cache/cutover/engines/NAME-VERSION/bin/
# and write ~/.cache/cutover/engines/env (NAME=/abs/path lines) for the tests.
#
#   bash engines/build.sh              # every engine
#   bash engines/build.sh pulumi etcd     # only these (names as in ENGINE_ORDER)
#   bash engines/build.sh --bundle DIR [ENGINE...]  # a bundle of the engines in the cache (make engines-bundle)
#   bash engines/build.sh --clean         # remove the cache and all the builds left (make engines-clean)
#
# Idempotent: an engine whose binary is there, answers with its version and
# was built from the same module files, flags and Go version (a stamp, the
# same in any directory: a second clone finds the engines built) is not
# rebuilt, so a second run takes seconds. An engine already on PATH at a
# usable version (pulumi >= 3.272, kube-apiserver/kube-controller-manager
# >= 1.37, etcd >= 3.4, flagd >= 0.11, pulumi-resource-kubernetes at the
# pinned provider/v4 version) is used instead. With CUTOVER_ENGINES_BUNDLE,
# an engine the bundle holds at the pinned version is installed from it
# (sha256 and version checked, stamped as our own build) instead of built.
#
# Each engine is checked, installed and built under its own lock (flock on
# CACHE/.locks/NAME-VERSION.lock) in a scratch directory of its own: two runs
# at once never collide, and the second waits, then finds the engine built.
# From-source builds use Go caches of their own (CACHE/.go), removed after a
# successful run; a user's own Go caches are never touched.
#
# Environment:
#   CUTOVER_ENGINES_DIR     cache root (default ~/.cache/cutover/engines)
#   CUTOVER_ENGINES_BUNDLE  a bundle directory (engines.json, SHA256SUMS, NAME-VERSION.tar.xz)
#   ENGINES_NICE            nice level of the builds (default 15)
#   ENGINES_NO_PATH=1       ignore engines on PATH and apt: build every one of ours
#   ENGINES_NO_APT=1        never apt-get install etcd-server (build etcd instead)
#   ENGINES_KEEP_GO_CACHES=1  keep CACHE/.go after a build (faster rebuilds, about 13 GB)
#   GOTOOLCHAIN             default "local" (every module here needs Go <= 1.26.6)
#
# Exit status: 0 when every selected engine is available; 1 otherwise, after
# a "BUILD FAILED: <engine> <version>" block with the error for each one.
set -u -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MODULES="$HERE/modules"
CACHE="${CUTOVER_ENGINES_DIR:-$HOME/.cache/cutover/engines}"
NICE="${ENGINES_NICE:-15}"

# ---- pinned versions -------------------------------------------------------
# pulumi Python SDK pinned by the project: 3.272.0. github.com/pulumi/pulumi/
# pkg/v3 v3.272.0 is refused by the module proxy here (403 "not available");
# v3.274.1 is the nearest served release at or above it.
PULUMI_VERSION=3.274.1
PULUMI_MIN_MINOR=272          # a pulumi 3.x on PATH from 3.272 on is usable
# Python language host: our own small host (modules/pulumi-language-python),
# built on github.com/pulumi/pulumi/sdk/v3 at the SDK's own tag; upstream's
# host module is not served at any version (see modules/.../main.go).
PYHOST_VERSION=3.272.0
# pulumi-kubernetes provider: the module proxy serves provider/v4 only at
# this pseudo-version (commit of 2026-01-15); v4.34.2 is not a tag of it.
K8S_PROVIDER_MODVER=v4.0.0-20260115033456-f47bc2d6f199
K8S_PROVIDER_VERSION=${K8S_PROVIDER_MODVER#v}
KUBE_VERSION=1.37.2           # kubernetes-validate 1.37.0 validates 1.37 schemas
KUBE_MIN_MINOR=37
ETCD_BUILD_VERSION=3.6.17     # only if no etcd >= 3.4 is on PATH or from apt
ETCD_MIN="3.4"
FLAGD_MIN="0.11"
FLAGD_VERSION=0.16.1          # latest flagd release; flagd/core is served, flagd/flagd is not

ENGINE_ORDER="pulumi pulumi-language-python pulumi-resource-kubernetes kube-apiserver kube-controller-manager etcd flagd"

pinned_version() {  # pinned_version ENGINE: the version of ours build.sh builds (the cache's NAME-VERSION)
  case "$1" in
    pulumi) printf '%s' "$PULUMI_VERSION";;
    pulumi-language-python) printf '%s' "$PYHOST_VERSION";;
    pulumi-resource-kubernetes) printf '%s' "$K8S_PROVIDER_VERSION";;
    kube-apiserver|kube-controller-manager) printf '%s' "$KUBE_VERSION";;
    etcd) printf '%s' "$ETCD_BUILD_VERSION";;
    flagd) printf '%s' "$FLAGD_VERSION";;
  esac
}

export GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
export CGO_ENABLED=0
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-mod=readonly"

GO_OWN="$CACHE/.go"          # the from-source builds' own Go caches, removed after success
export GOCACHE="$GO_OWN/build" GOMODCACHE="$GO_OWN/mod"
mkdir -p "$CACHE/.build" "$CACHE/.locks"

declare -A ENV_OUT=()      # NAME -> abs path of binary
PATH_DIRS=()               # dirs to put on PATH, in order
FAILED=()                  # "engine version" of failures
SUMMARY=()

say() { printf '%s\n' "$*"; }
now() { date +%s; }

add_path_dir() {  # only our own dirs: a binary found on PATH is on PATH already
  local d=$1 x
  case "$d" in "$CACHE"/*) ;; *) return 0;; esac
  for x in "${PATH_DIRS[@]+"${PATH_DIRS[@]}"}"; do [ "$x" = "$d" ] && return 0; done
  PATH_DIRS+=("$d")
}

envname() { printf '%s' "$1" | tr 'a-z-' 'A-Z_'; }

record() {  # record BINARY_NAME ABS_PATH
  ENV_OUT[$(envname "$1")]=$2
  add_path_dir "$(dirname "$2")"
}

fail() {  # fail ENGINE VERSION LOGFILE MESSAGE
  FAILED+=("$1 $2: $4")
  {
    say ""
    say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    say "BUILD FAILED: $1 $2: $4"
    if [ -n "$3" ] && [ -s "$3" ]; then
      say "---- last lines of $3 ----"
      tail -n 40 "$3"
    fi
    say "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  } >&2
}

disk() { du -sh "$1" 2>/dev/null | cut -f1; }

# version_ge A B: true if dotted version A >= B (numeric parts only).
version_ge() {
  [ "$(printf '%s\n%s\n' "$2" "$1" | sort -t. -k1,1n -k2,2n -k3,3n | head -n1)" = "$2" ]
}

# stamp_key FILE_OR_WORD...: what a build depends on besides the Go toolchain: each file's base name and
# contents (never its directory: a clone anywhere finds the engines built), and the words.
stamp_key() {
  local a
  { go env GOVERSION
    for a in "$@"; do
      if [ -f "$a" ]; then printf 'file %s %s\n' "${a##*/}" "$(sha256sum <"$a" | cut -c1-64)"
      else printf 'word %s\n' "$a"; fi
    done
  } | sha256sum | cut -c1-16
}

# ---- locks ----------------------------------------------------------------
# One lock per engine (flock on $CACHE/.locks/ENGINE-VERSION.lock) around its check, install and build:
# two runs at once (two clones, CI beside a developer) never share a scratch directory, and the second
# waits, then finds the engine the first one built.
LOCK_FD=""
lock_engine() {  # lock_engine NAME: hold NAME's lock (waits, saying so, if another run holds it)
  local fd
  exec {fd}>"$CACHE/.locks/$1.lock"
  if ! flock -n "$fd"; then
    say "    (another run is building $1, it holds $CACHE/.locks/$1.lock: waiting for it)"
    flock "$fd"
  fi
  LOCK_FD=$fd
}
unlock_engine() { [ -z "$LOCK_FD" ] || exec {LOCK_FD}>&-; LOCK_FD=""; }

# The Go caches of from-source builds are our own (GOCACHE and GOMODCACHE under $CACHE/.go; a user's
# own are never touched). Every run that builds holds them shared; after a successful run the last
# one out removes them (exclusive, non-blocking), so a machine keeps the binaries, not 13 GB of caches.
GO_FD=""
use_go_caches() {
  [ -z "$GO_FD" ] || return 0
  mkdir -p "$GO_OWN"
  exec {GO_FD}>"$CACHE/.locks/go-caches.lock"
  flock -s "$GO_FD"
}
remove_go_caches() {
  [ -n "$GO_FD" ] && [ -d "$GO_OWN" ] || return 0
  if [ "${ENGINES_KEEP_GO_CACHES:-}" = 1 ]; then
    say "   Go caches kept in $GO_OWN ($(disk "$GO_OWN"); ENGINES_KEEP_GO_CACHES=1)"
    return 0
  fi
  if flock -x -n "$GO_FD"; then
    local size
    size=$(disk "$GO_OWN")
    chmod -R u+w "$GO_OWN" 2>/dev/null
    rm -rf "$GO_OWN"
    say "   removed the builds' Go caches ($GO_OWN, $size)"
  else
    say "   Go caches left in $GO_OWN: another run is building with them (the last one out removes them)"
  fi
}

# ---- the version an engine reports ---------------------------------------------
# version_ok BIN VCMD VWANT: BIN run with VCMD prints VWANT. VCMD "@gomod" reads the binary's Go build
# information instead (for programs without a version command): VWANT is "MODULE VERSION".
version_ok() {
  local bin=$1 vcmd=$2 vwant=$3 vout
  [ -n "$vcmd" ] || return 0
  if [ "$vcmd" = @gomod ]; then
    vout=$(go version -m "$bin" 2>/dev/null | awk '$1 == "mod" || $1 == "dep" {print $2 " " $3}')
    case $'\n'"$vout"$'\n' in *$'\n'"$vwant"$'\n'*) return 0;; *) return 1;; esac
  fi
  # shellcheck disable=SC2086  # VCMD is a list of arguments
  vout=$("$bin" $vcmd 2>&1) || return 1
  case "$vout" in *"$vwant"*) return 0;; *) return 1;; esac
}

# ---- a bundle: prebuilt engines ----------------------------------------------
# CUTOVER_ENGINES_BUNDLE=DIR: a directory made by `make engines-bundle` (engines/build.sh --bundle):
# NAME-VERSION.tar.xz per engine, SHA256SUMS, engines.json. An engine at the pinned version is
# installed from it (hash and version checked) and stamped as a build of ours; any other is built.
bundle_entry() {  # bundle_entry NAME: "version<TAB>archive<TAB>sha256<TAB>bins" of NAME, or nothing
  python3 - "$1" "$CUTOVER_ENGINES_BUNDLE/engines.json" <<'PY'
import json, sys
name, path = sys.argv[1:3]
try:
    engines = json.load(open(path))["engines"]
except (OSError, ValueError, KeyError, TypeError) as exc:
    sys.exit(f"unreadable {path}: {exc}")
for e in engines:
    if e.get("name") == name:
        print("\t".join([e["version"], e["archive"], e["sha256"], " ".join(e["bin"])]))
PY
}

bundle_refused() {  # bundle_refused ENGINE SCRATCH MESSAGE: say why the bundle is not used, drop its scratch; false
  [ -z "$2" ] || rm -rf "$2"
  say "    ($3: building $1)"
  return 1
}

from_bundle() {  # from_bundle ENGINE VERSION OUT VCMD VWANT KEY
  local engine=$1 version=$2 out=$3 vcmd=$4 vwant=$5 key=$6
  local b=${CUTOVER_ENGINES_BUNDLE:-} dest="$CACHE/$1-$2" entry bv archive sha bins t0 got listed f
  [ -n "$b" ] || return 1
  [ -f "$b/engines.json" ] || bundle_refused "$engine" "" "CUTOVER_ENGINES_BUNDLE=$b has no engines.json" || return 1
  t0=$(now)
  entry=$(bundle_entry "$engine") || { bundle_refused "$engine" "" "bundle $b: engines.json unreadable"; return 1; }
  [ -n "$entry" ] || bundle_refused "$engine" "" "bundle $b has no $engine" || return 1
  IFS=$'\t' read -r bv archive sha bins <<<"$entry"
  [ "$bv" = "$version" ] || bundle_refused "$engine" "" "bundle $b has $engine $bv, the pin is $version" || return 1
  got=$(sha256sum <"$b/$archive" 2>/dev/null | cut -c1-64)
  listed=$(awk -v a="$archive" '$2 == a || $2 == "*" a {print $1}' "$b/SHA256SUMS" 2>/dev/null)
  if [ "$got" != "$sha" ] || { [ -f "$b/SHA256SUMS" ] && [ "$listed" != "$sha" ]; }; then
    bundle_refused "$engine" "" "bundle $b: $archive has sha256 '${got:-unreadable}', engines.json says $sha${listed:+, SHA256SUMS $listed}"
    return 1
  fi
  local scratch="$CACHE/.build/$engine-bundle.$$"
  rm -rf "$scratch" && mkdir -p "$scratch"
  tar -xJf "$b/$archive" -C "$scratch" || bundle_refused "$engine" "$scratch" "bundle $b: $archive does not unpack" || return 1
  for f in $bins; do
    [ -f "$scratch/$f" ] || bundle_refused "$engine" "$scratch" "bundle $b: $archive lacks $f" || return 1
  done
  version_ok "$scratch/$out" "$vcmd" "$vwant" ||
    bundle_refused "$engine" "$scratch" "bundle $b: $engine's $out does not report '$vwant'" || return 1
  mkdir -p "$dest/bin"
  for f in $bins; do mv -f "$scratch/$f" "$dest/bin/$f"; done
  rm -rf "$scratch"
  printf '%s\n' "$key" >"$dest/.stamp"
  say "==> $engine $version: installed from the bundle ($archive, sha256 checked${vcmd:+, version checked}) in $(($(now) - t0)) s, $(disk "$dest")"
  SUMMARY+=("$engine $version: from the bundle in $(($(now) - t0)) s, $(disk "$dest")")
  return 0
}

# go_build ENGINE VERSION MODULE PKG OUT VERSION_CMD VERSION_WANT LDFLAGS TAGS [PREHOOK]
#   builds package PKG inside our module MODULE (modules/MODULE, copied to a
#   scratch dir so generated files stay out of the source tree) into
#   $CACHE/ENGINE-VERSION/bin/OUT, unless it is built already (same stamp) or
#   the bundle has it.
#   VERSION_CMD: arguments that make OUT print its version ("" = none,
#   "@gomod" = its Go build information); VERSION_WANT: what that must show.
go_build() {
  local engine=$1 version=$2 module=$3 pkg=$4 out=$5 vcmd=$6 vwant=$7 ldflags=$8 tags=$9
  local prehook=${10:-}
  local dest="$CACHE/$engine-$version" src="$MODULES/$module"
  local bin="$dest/bin/$out" log="$dest/build.log" stamp="$dest/.stamp"
  local key t0 t1
  # files in subdirectories: local modules the module's go.mod replaces (modules/flagd/operator-api)
  local -a subfiles
  mapfile -t subfiles < <(find "$src" -mindepth 2 -type f | LC_ALL=C sort)
  key=$(stamp_key "$src/go.mod" "$src/go.sum" "$src"/*.go "${subfiles[@]}" "$pkg" "$ldflags" "$tags" "$prehook")
  lock_engine "$engine-$version"
  if [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$key" ] && version_ok "$bin" "$vcmd" "$vwant"; then
    say "==> $engine $version: already built ($bin), 0 s, $(disk "$dest")"
    SUMMARY+=("$engine $version: cached, $(disk "$dest")")
    record "$out" "$bin"
    unlock_engine
    return 0
  fi
  if from_bundle "$engine" "$version" "$out" "$vcmd" "$vwant" "$key"; then
    record "$out" "$bin"
    unlock_engine
    return 0
  fi
  say "==> $engine $version: building $pkg (module $module, nice $NICE) ..."
  use_go_caches
  mkdir -p "$dest/bin"
  local work="$CACHE/.build/$engine.$$"
  rm -rf "$work" && mkdir -p "$work" && cp "$src"/go.mod "$src"/go.sum "$src"/*.go "$work"/
  find "$src" -mindepth 1 -maxdepth 1 -type d -exec cp -r {} "$work"/ \;
  t0=$(now)
  # (set -e does not apply here: go_build runs on the left of ||)
  (
    cd "$work" || exit 1
    if [ -n "$prehook" ]; then "$prehook" "$work" "$version" || { echo "pre-build step $prehook failed"; exit 1; }; fi
    nice -n "$NICE" go build -trimpath ${tags:+-tags "$tags"} -ldflags "$ldflags" -o "$bin.new.$$" "$pkg" || exit $?
    mv -f "$bin.new.$$" "$bin"
  ) >"$log" 2>&1
  local rc=$?
  t1=$(now)
  rm -rf "$work"
  if [ $rc -ne 0 ]; then
    rm -f "$bin.new.$$" "$stamp"
    fail "$engine" "$version" "$log" "go build exited $rc after $((t1 - t0)) s"
    unlock_engine
    return 1
  fi
  if ! version_ok "$bin" "$vcmd" "$vwant"; then
    rm -f "$stamp"
    fail "$engine" "$version" "$log" "built, but '$out ${vcmd}' does not show '$vwant'"
    unlock_engine
    return 1
  fi
  printf '%s\n' "$key" >"$stamp"
  say "    built $bin in $((t1 - t0)) s, disk $(disk "$dest") (log: $log)"
  SUMMARY+=("$engine $version: built in $((t1 - t0)) s, $(disk "$dest")")
  record "$out" "$bin"
  unlock_engine
}

# on_path CMD: the absolute path of CMD on PATH unless it is one of ours.
on_path() {
  local p
  [ "${ENGINES_NO_PATH:-}" = 1 ] && return 1
  p=$(command -v "$1" 2>/dev/null) || return 1
  case "$p" in "$CACHE"/*) return 1;; esac
  printf '%s' "$p"
}

# ---- 1. pulumi CLI ---------------------------------------------------------
USER_PULUMI=""
engine_pulumi() {
  local p v
  if p=$(on_path pulumi); then
    v=$("$p" version 2>/dev/null | tr -d 'v\r')
    if [ "${v%%.*}" = 3 ] && version_ge "$v" "3.$PULUMI_MIN_MINOR"; then
      say "==> pulumi: using $p (version $v >= 3.$PULUMI_MIN_MINOR, found on PATH)"
      SUMMARY+=("pulumi $v: from PATH ($p)")
      USER_PULUMI=$p
      record pulumi "$p"
      return 0
    fi
    say "    (pulumi on PATH at $p is version '$v', too old: building our own)"
  fi
  go_build pulumi "$PULUMI_VERSION" pulumi github.com/pulumi/pulumi/pkg/v3/cmd/pulumi pulumi \
    version "v$PULUMI_VERSION" \
    "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=v$PULUMI_VERSION" ""
}

# ---- 1b. Python language host ---------------------------------------------
pyhost_prehook() {  # copy the upstream runner script next to the binary
  local work=$1 sdkdir
  sdkdir=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3) || return 1
  [ -n "$sdkdir" ] || { go mod download github.com/pulumi/pulumi/sdk/v3 &&
    sdkdir=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3); }
  install -m 0755 "$sdkdir/python/cmd/pulumi-language-python-exec" \
    "$CACHE/pulumi-language-python-$PYHOST_VERSION/bin/pulumi-language-python-exec"
}
engine_pulumi_language_python() {
  local p
  if [ -n "$USER_PULUMI" ] && [ -x "$(dirname "$USER_PULUMI")/pulumi-language-python" ]; then
    p="$(dirname "$USER_PULUMI")/pulumi-language-python"
    say "==> pulumi-language-python: using $p (next to the pulumi found on PATH)"
    SUMMARY+=("pulumi-language-python: from PATH ($p)")
    record pulumi-language-python "$p"
    return 0
  fi
  go_build pulumi-language-python "$PYHOST_VERSION" pulumi-language-python \
    cutover.local/engines/pulumi-language-python pulumi-language-python \
    -version "$PYHOST_VERSION" "-s -w -X main.version=$PYHOST_VERSION" grpcnotrace pyhost_prehook ||
    return 1
  local dir="$CACHE/pulumi-language-python-$PYHOST_VERSION/bin"
  [ -x "$dir/pulumi-language-python-exec" ] || {
    fail pulumi-language-python "$PYHOST_VERSION" "" "runner script pulumi-language-python-exec missing in $dir"
    rm -f "$CACHE/pulumi-language-python-$PYHOST_VERSION/.stamp"
    return 1
  }
  # Pulumi looks for its language hosts next to its own executable first
  # ("bundled"); a host found only on PATH works but earns a warning on every
  # run. So our pulumi gets hard links (copies across file systems) of both.
  local pdir="$CACHE/pulumi-$PULUMI_VERSION/bin" f
  if [ -z "$USER_PULUMI" ] && [ -d "$pdir" ]; then
    for f in pulumi-language-python pulumi-language-python-exec; do
      if ! [ "$pdir/$f" -ef "$dir/$f" ]; then
        ln -f "$dir/$f" "$pdir/$f" 2>/dev/null || cp -f "$dir/$f" "$pdir/$f"
      fi
    done
    record pulumi-language-python "$pdir/pulumi-language-python"
  fi
}

# ---- 2. Kubernetes resource provider ----------------------------------------
k8s_provider_prehook() {  # upstream's `VERSION=... go generate` step
  local work=$1 version=$2 dir
  dir=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4) || return 1
  if [ -z "$dir" ]; then
    go mod download github.com/pulumi/pulumi-kubernetes/provider/v4 || return 1
    dir=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)
  fi
  python3 - "$dir/cmd/pulumi-resource-kubernetes" "$work" "$version" <<'PY'
import json, os, sys
src, work, version = sys.argv[1:4]
schema = json.load(open(os.path.join(src, "schema.json")))
schema["version"] = version
json.dump(schema, open(os.path.join(work, "schema-embed.json"), "w"), separators=(",", ":"))
mapping = json.load(open(os.path.join(src, "terraform-mapping.json")))
json.dump(mapping, open(os.path.join(work, "terraform-mapping-embed.json"), "w"), separators=(",", ":"))
PY
}
engine_pulumi_resource_kubernetes() {
  local p
  # No version command: its Go build information names the provider module and version it was built from.
  if p=$(on_path pulumi-resource-kubernetes); then
    if version_ok "$p" @gomod "github.com/pulumi/pulumi-kubernetes/provider/v4 $K8S_PROVIDER_MODVER"; then
      say "==> pulumi-resource-kubernetes: using $p (provider/v4 $K8S_PROVIDER_MODVER, found on PATH)"
      SUMMARY+=("pulumi-resource-kubernetes $K8S_PROVIDER_VERSION: from PATH ($p)")
      record pulumi-resource-kubernetes "$p"
      return 0
    fi
    say "    (pulumi-resource-kubernetes on PATH at $p is not provider/v4 $K8S_PROVIDER_MODVER: using our own)"
  fi
  go_build pulumi-resource-kubernetes "$K8S_PROVIDER_VERSION" pulumi-kubernetes \
    cutover.local/engines/pulumi-kubernetes pulumi-resource-kubernetes \
    @gomod "github.com/pulumi/pulumi-kubernetes/provider/v4 $K8S_PROVIDER_MODVER" \
    "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$K8S_PROVIDER_VERSION" "" \
    k8s_provider_prehook
}

# ---- 3. kube-apiserver and etcd ---------------------------------------------
kube_ldflags() {  # hack/lib/version.sh's -X stamps
  local kv=k8s.io/component-base/version cv=k8s.io/client-go/pkg/version ld="-s -w" k
  for k in "gitVersion=v$KUBE_VERSION" "gitMajor=${KUBE_VERSION%%.*}" \
    "gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2)" gitTreeState=clean \
    "buildDate=1970-01-01T00:00:00Z"; do
    ld="$ld -X $kv.$k -X $cv.$k"
  done
  printf '%s' "$ld"
}

kube_engine() {  # kube_engine NAME: kube-apiserver or kube-controller-manager
  local name=$1 p v
  if p=$(on_path "$name"); then
    v=$("$p" --version 2>/dev/null | sed -n 's/^Kubernetes v\([0-9.]*\).*/\1/p')
    if [ -n "$v" ] && version_ge "$v" "1.$KUBE_MIN_MINOR"; then
      say "==> $name: using $p (version $v, found on PATH)"
      SUMMARY+=("$name $v: from PATH ($p)")
      record "$name" "$p"
      return 0
    fi
  fi
  # hack/lib/golang.sh: -tags selinux,notest,grpcnotrace; static (CGO off).
  go_build "$name" "$KUBE_VERSION" kubernetes "k8s.io/kubernetes/cmd/$name" \
    "$name" --version "Kubernetes v$KUBE_VERSION" "$(kube_ldflags)" selinux,notest,grpcnotrace
}
engine_kube_apiserver() { kube_engine kube-apiserver; }
# Only its garbage collector and namespace controllers are used (kubecluster.py):
# without them foreground deletes (pulumi destroy) and namespace deletes hang.
engine_kube_controller_manager() { kube_engine kube-controller-manager; }

engine_etcd() {
  local p v
  if p=$(on_path etcd); then
    v=$("$p" --version 2>/dev/null | sed -n 's/^etcd Version: *\([0-9.]*\).*/\1/p')
    if [ -n "$v" ] && version_ge "$v" "$ETCD_MIN"; then
      say "==> etcd: using $p (version $v >= $ETCD_MIN, found on PATH)"
      SUMMARY+=("etcd $v: from PATH ($p)")
      record etcd "$p"
      return 0
    fi
  fi
  if [ "${ENGINES_NO_APT:-}" != 1 ] && [ "${ENGINES_NO_PATH:-}" != 1 ] && [ "$(id -u)" = 0 ] &&
    command -v apt-get >/dev/null; then
    local t0 t1
    t0=$(now)
    say "==> etcd: apt-get install -y etcd-server (Debian) ..."
    mkdir -p "$CACHE/etcd-apt"
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >"$CACHE/etcd-apt/apt.log" 2>&1 ||
      { apt-get update -q >>"$CACHE/etcd-apt/apt.log" 2>&1 &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >>"$CACHE/etcd-apt/apt.log" 2>&1; }; then
      t1=$(now)
      p=$(command -v etcd) && v=$("$p" --version 2>/dev/null | sed -n 's/^etcd Version: *\([0-9.]*\).*/\1/p')
      if [ -n "$v" ] && version_ge "$v" "$ETCD_MIN"; then
        say "    installed etcd $v at $p in $((t1 - t0)) s"
        SUMMARY+=("etcd $v: apt-get install etcd-server in $((t1 - t0)) s")
        record etcd "$p"
        return 0
      fi
    fi
    say "    (apt-get did not give a usable etcd, see $CACHE/etcd-apt/apt.log: building it)"
  fi
  go_build etcd "$ETCD_BUILD_VERSION" etcd go.etcd.io/etcd/server/v3 etcd \
    --version "etcd Version: $ETCD_BUILD_VERSION" \
    "-s -w" ""
}

# ---- 4. flagd ----------------------------------------------------------------
engine_flagd() {
  local p v
  if p=$(on_path flagd); then
    v=$("$p" version 2>&1 | sed -n 's/.*[Vv]ersion:* *v\{0,1\}\([0-9][0-9.]*\).*/\1/p' | head -n1)
    if [ -n "$v" ] && version_ge "$v" "$FLAGD_MIN"; then
      say "==> flagd: using $p (version $v >= $FLAGD_MIN, found on PATH)"
      SUMMARY+=("flagd $v: from PATH ($p)")
      record flagd "$p"
      return 0
    fi
  fi
  # Upstream's command module (github.com/open-feature/flagd/flagd) is not
  # served by the module proxy here; modules/flagd is a flagd-compatible
  # daemon on the served github.com/open-feature/flagd/core (same release).
  go_build flagd "$FLAGD_VERSION" flagd cutover.local/engines/flagd flagd \
    version "flagd version $FLAGD_VERSION (cutover build on github.com/open-feature/flagd/core v$FLAGD_VERSION; sync: file, kubernetes)" "-s -w -X main.version=$FLAGD_VERSION" grpcnotrace
}

# ---- a bundle from the cache, and clean ----------------------------------------------
# make_bundle DIR: one NAME-VERSION.tar.xz per engine of ours in the cache (the files of its bin/),
# SHA256SUMS and engines.json, the format CUTOVER_ENGINES_BUNDLE reads.
make_bundle() {  # make_bundle DIR [ENGINE...]: every engine of ours in the cache, or only these
  local dir=$1 name version src files n=0
  shift
  local only=" $* "
  mkdir -p "$dir" && dir=$(cd "$dir" && pwd) || { say "engines/build.sh: cannot create $1" >&2; exit 2; }
  : >"$dir/.entries"
  for name in $ENGINE_ORDER; do
    [ "$only" = "  " ] || case "$only" in *" $name "*) ;; *) continue;; esac
    version=$(pinned_version "$name")
    src="$CACHE/$name-$version"
    if [ ! -f "$src/.stamp" ] || [ -z "$(ls -A "$src/bin" 2>/dev/null)" ]; then
      say "==> $name $version: not in the cache (taken from PATH or apt, or never built here): left out"
      continue
    fi
    files=$(cd "$src/bin" && ls -A | sort | tr '\n' ' ')
    say "==> $name $version: $dir/$name-$version.tar.xz ($files) ..."
    # shellcheck disable=SC2086  # the file names, one word each
    (cd "$src/bin" && XZ_OPT=${XZ_OPT:--6T0} tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 \
      -cJf "$dir/$name-$version.tar.xz.new" $files) && mv -f "$dir/$name-$version.tar.xz.new" "$dir/$name-$version.tar.xz" ||
      { say "engines/build.sh: could not write $dir/$name-$version.tar.xz" >&2; exit 1; }
    printf '%s\t%s\t%s\t%s\n' "$name" "$version" "$name-$version.tar.xz" "$files" >>"$dir/.entries"
    n=$((n + 1))
  done
  python3 - "$dir" <<'PY2'
import hashlib, json, os, sys
d = sys.argv[1]
engines = []
for line in open(os.path.join(d, ".entries")):
    name, version, archive, files = line.rstrip("\n").split("\t")
    sha = hashlib.sha256(open(os.path.join(d, archive), "rb").read()).hexdigest()
    engines.append({"name": name, "version": version, "archive": archive, "sha256": sha, "bin": files.split()})
doc = {"made_by": "engines/build.sh --bundle (make engines-bundle) of the cutover repository", "engines": engines}
with open(os.path.join(d, "engines.json"), "w") as fh:
    json.dump(doc, fh, indent=2)
    fh.write("\n")
with open(os.path.join(d, "SHA256SUMS"), "w") as fh:
    fh.writelines(f"{e['sha256']}  {e['archive']}\n" for e in engines)
PY2
  rm -f "$dir/.entries"
  say "---- bundle: $n engines in $dir ($(disk "$dir")); use it with CUTOVER_ENGINES_BUNDLE=$dir make engines"
}

case "${1:-}" in
  --bundle)
    [ -n "${2:-}" ] || { say "usage: engines/build.sh --bundle DIR [ENGINE...]   (make engines-bundle DIR=...)" >&2; exit 2; }
    shift
    make_bundle "$@"
    exit 0;;
  --clean)
    size=$(disk "$CACHE")
    chmod -R u+w "$CACHE" 2>/dev/null
    rm -rf "$CACHE"
    say "removed $CACHE (${size:-0}): the engines, their env file and the builds' Go caches"
    exit 0;;
  -h|--help)
    sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0;;
esac

# ---- main -----------------------------------------------------------------
selected=("$@")
[ ${#selected[@]} -gt 0 ] || read -r -a selected <<<"$ENGINE_ORDER"
for e in "${selected[@]}"; do
  case " $ENGINE_ORDER " in *" $e "*) ;; *) say "engines/build.sh: unknown engine '$e' (known: $ENGINE_ORDER)" >&2; exit 2;; esac
done
if [ -n "${CUTOVER_ENGINES_BUNDLE:-}" ]; then
  if [ -d "$CUTOVER_ENGINES_BUNDLE" ]; then
    CUTOVER_ENGINES_BUNDLE=$(cd "$CUTOVER_ENGINES_BUNDLE" && pwd)
    say "==> bundle: $CUTOVER_ENGINES_BUNDLE (an engine at its pinned version is installed from it, any other built)"
  else
    say "    (CUTOVER_ENGINES_BUNDLE=$CUTOVER_ENGINES_BUNDLE is not a directory: building every engine)"
    CUTOVER_ENGINES_BUNDLE=""
  fi
fi

T_START=$(now)
for e in $ENGINE_ORDER; do
  case " ${selected[*]} " in *" $e "*) ;; *) continue;; esac
  "engine_$(printf '%s' "$e" | tr - _)" || true
done
T_END=$(now)

# env: merge with what an earlier run wrote for engines not selected now (one run at a time).
lock_engine env
envfile="$CACHE/env"
declare -A OLD=()
if [ -f "$envfile" ]; then
  while IFS='=' read -r k v; do
    case "$k" in ''|'#'*|ENGINES_PATH) continue;; esac
    OLD[$k]=$v
  done <"$envfile"
fi
for k in "${!OLD[@]}"; do
  [ -n "${ENV_OUT[$k]+x}" ] || { [ -x "${OLD[$k]}" ] && ENV_OUT[$k]=${OLD[$k]} && add_path_dir "$(dirname "${OLD[$k]}")"; }
done
{
  say "# written by $HERE/build.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  say "# NAME=/abs/path/to/binary; ENGINES_PATH lists their directories (prepend it to PATH:"
  say "# pulumi finds its plugins there; keep PULUMI_IGNORE_AMBIENT_PLUGINS unset)."
  for k in $(printf '%s\n' "${!ENV_OUT[@]}" | sort); do say "$k=${ENV_OUT[$k]}"; done
  say "ENGINES_PATH=$(IFS=:; printf '%s' "${PATH_DIRS[*]+"${PATH_DIRS[*]}"}")"
} >"$envfile.new.$$" && mv -f "$envfile.new.$$" "$envfile"
unlock_engine

say ""
say "---- engines: $((T_END - T_START)) s in all; cache $CACHE ($(disk "$CACHE"))"
for s in "${SUMMARY[@]+"${SUMMARY[@]}"}"; do say "   $s"; done
say "   env file: $envfile"
[ ${#FAILED[@]} -gt 0 ] || remove_go_caches
if [ ${#FAILED[@]} -gt 0 ]; then
  for f in "${FAILED[@]}"; do say "BUILD FAILED: $f (log and error above)" >&2; done
  exit 1
fi
exit 0
