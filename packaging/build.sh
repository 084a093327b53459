#!/usr/bin/env bash
# Builds the Debian (.deb) or RPM packages from this tree and checks what they install.
#
# Usage: packaging/build.sh deb|rpm [OUTDIR]     (default OUTDIR: target/packages)
# Needs: deb: dpkg-dev, debhelper; rpm: rpm (rpmbuild). Both: cargo. The tree's release build is
# reused (CARGO_TARGET_DIR).
set -euo pipefail
kind=${1:?usage: packaging/build.sh deb|rpm [OUTDIR]}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${2:-$ROOT/target/packages}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"

# The source as a package sees it: the files git tracks, as they are in the tree now.
src=$WORK/slirp-ns-$VERSION
mkdir -p "$src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src")

# What a package must hold, besides the compatibility link in its own package.
expected=(
    usr/bin/slirp-ns
    usr/share/man/man1/slirp-ns.1
    usr/share/bash-completion/completions/slirp-ns
    usr/share/fish/vendor_completions.d/slirp-ns.fish
)
check() {
    local listing=$1 what=$2
    for path in "${expected[@]}" "$3"; do
        grep -q "$path" <<<"$listing" || { echo "$what lacks $path:" >&2; echo "$listing" >&2; exit 1; }
    done
}

case $kind in
    deb)
        cp -r "$src/packaging/debian" "$src/debian"
        (cd "$src" && dpkg-buildpackage -b -us -uc -d >"$WORK/build.log" 2>&1) \
            || { cat "$WORK/build.log" >&2; exit 1; }
        main=$(ls "$WORK"/slirp-ns_"$VERSION"_*.deb)
        compat=$(ls "$WORK"/slirp-ns-slirp4netns_"$VERSION"_all.deb)
        check "$(dpkg-deb -c "$main")" "$main" usr/share/zsh/vendor-completions/_slirp-ns
        dpkg-deb -c "$compat" | grep -q "usr/bin/slirp4netns -> slirp-ns" \
            || { echo "$compat lacks the slirp4netns link" >&2; exit 1; }
        as_pasta=$(ls "$WORK"/slirp-ns-pasta_"$VERSION"_all.deb)
        dpkg-deb -c "$as_pasta" | grep -q "usr/bin/pasta -> slirp-ns" \
            || { echo "$as_pasta lacks the pasta link" >&2; exit 1; }
        cp "$main" "$compat" "$as_pasta" "$OUT"/
        ;;
    rpm)
        tar -C "$WORK" -czf "$WORK/slirp-ns-$VERSION.tar.gz" "slirp-ns-$VERSION"
        rpmbuild -bb --nodeps --define "_topdir $WORK/rpm" --define "_sourcedir $WORK" \
            "$ROOT/packaging/rpm/slirp-ns.spec" >"$WORK/build.log" 2>&1 \
            || { cat "$WORK/build.log" >&2; exit 1; }
        main=$(ls "$WORK"/rpm/RPMS/*/slirp-ns-"$VERSION"-1*.rpm | grep -v -e slirp4netns -e pasta)
        compat=$(ls "$WORK"/rpm/RPMS/noarch/slirp-ns-slirp4netns-"$VERSION"-1*.rpm)
        check "$(rpm -qlp "$main" 2>/dev/null)" "$main" usr/share/zsh/site-functions/_slirp-ns
        rpm -qlp "$compat" 2>/dev/null | grep -q "^/usr/bin/slirp4netns$" \
            || { echo "$compat lacks the slirp4netns link" >&2; exit 1; }
        as_pasta=$(ls "$WORK"/rpm/RPMS/noarch/slirp-ns-pasta-"$VERSION"-1*.rpm)
        rpm -qlp "$as_pasta" 2>/dev/null | grep -q "^/usr/bin/pasta$" \
            || { echo "$as_pasta lacks the pasta link" >&2; exit 1; }
        cp "$main" "$compat" "$as_pasta" "$OUT"/
        ;;
    *) echo "usage: packaging/build.sh deb|rpm [OUTDIR]" >&2; exit 1 ;;
esac
echo "built and checked: $(cd "$OUT" && ls | tr '\n' ' ')"
