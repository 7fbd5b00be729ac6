#!/usr/bin/env bash
# Builds and installs pgvector for the machine's PostgreSQL 15 (Debian 12 has no package
# for it) from Debian's own `pgvector` source package in the trixie source archive.
#
# Idempotent: does nothing when the extension of that version is already installed.
# Needs root. Uses only the Debian archive the machine's apt sources already point at,
# with a private apt configuration in a scratch directory, so the system's package lists
# and caches are left untouched. See ../shared/spec/rag.md §4.
set -euo pipefail

PG_MAJOR="${PG_MAJOR:-15}"
PGVECTOR_VERSION="${PGVECTOR_VERSION:-0.8.0}"
PG_CONFIG="/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config"

installed_version() {
    [[ -x "$PG_CONFIG" ]] || return 1
    local control
    control="$("$PG_CONFIG" --sharedir)/extension/vector.control"
    [[ -f "$control" && -f "$("$PG_CONFIG" --pkglibdir)/vector.so" ]] || return 1
    sed -n "s/^default_version = '\(.*\)'/\1/p" "$control"
}

if [[ "$(installed_version || true)" == "$PGVECTOR_VERSION" ]]; then
    echo "pgvector $PGVECTOR_VERSION is already installed for PostgreSQL $PG_MAJOR"
    exit 0
fi
if [[ "$(id -u)" != 0 ]]; then
    echo "install_pgvector.sh: run as root (it installs postgresql-server-dev-$PG_MAJOR and the extension)" >&2
    exit 1
fi

# The Debian archive URI of the machine's own sources (deb822 or one-line format).
archive_uri() {
    local uri
    uri="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v -- '-security' | head -n1 || true)"
    if [[ -z "$uri" ]]; then
        uri="$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' \
            | grep -v -- '-security' | head -n1 || true)"
    fi
    echo "${uri:-http://deb.debian.org/debian}"
}

export DEBIAN_FRONTEND=noninteractive
if ! dpkg -s "postgresql-server-dev-$PG_MAJOR" >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq "postgresql-server-dev-$PG_MAJOR" make gcc >/dev/null
fi

work="$(mktemp -d /tmp/pgvector-build.XXXXXX)"
trap 'rm -rf "$work"' EXIT
cd "$work"
mkdir -p apt/lists/partial apt/cache/archives/partial
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(archive_uri) trixie main" >apt/sources.list
APT=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=-"
     -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache"
     -o "APT::Sandbox::User=root")
apt-get "${APT[@]}" update -qq
# apt checks the downloaded files against the signed source index.
apt-get "${APT[@]}" source --download-only "pgvector=${PGVECTOR_VERSION}-*" >/dev/null 2>&1 \
    || apt-get "${APT[@]}" source --download-only pgvector >/dev/null
orig="$(ls pgvector_*.orig.tar.* | head -n1)"
tar xf "$orig"
cd "$(find . -maxdepth 1 -type d -name 'pgvector-*' | head -n1)"
# OPTFLAGS="": no -march=native, so the build runs on any x86-64 CPU (pgvector README, "Portability").
make -s -j2 PG_CONFIG="$PG_CONFIG" OPTFLAGS=""
make -s install PG_CONFIG="$PG_CONFIG" OPTFLAGS=""
echo "pgvector $(installed_version) installed for PostgreSQL $PG_MAJOR"
