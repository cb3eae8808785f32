#!/bin/sh
# iproute2 (`ip netns`, veth) and util-linux (`setpriv`) for the icmp and path-trace tests, which
# build network namespaces and so run as root in CI. Elsewhere (not root) nothing is installed and
# those tests skip, saying why.
set -eu

if command -v ip >/dev/null 2>&1 && command -v setpriv >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-netns-tools: not root or no apt-get; the network-namespace tests will skip" >&2
    exit 0
fi
# No service may start from a package installed here.
POLICY=/usr/sbin/policy-rc.d
CREATED=""
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' > "$POLICY"
    chmod +x "$POLICY"
    CREATED=yes
fi
apt-get -o DPkg::Lock::Timeout=900 update -q || true
apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends iproute2 util-linux
if [ -n "$CREATED" ]; then
    rm -f "$POLICY"
fi
