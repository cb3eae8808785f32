#!/bin/sh
# Real web servers for the probe tests (nginx, Apache, Caddy, nghttpd for HTTP/2 only) and
# blackbox_exporter as the benchmark's peer. The tests start each on loopback themselves, so
# no service may start from the package scripts: a policy-rc.d answering 101 forbids it for
# the install, and is removed after. Idempotent: does nothing when everything is installed.
set -eu
need=""
for bin in /usr/sbin/nginx /usr/sbin/apache2 /usr/bin/caddy /usr/sbin/nghttpd /usr/bin/prometheus-blackbox-exporter; do
    [ -x "$bin" ] || need=yes
done
if [ -z "$need" ]; then
    echo "web servers already installed"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
# A machine's own policy-rc.d (a container's, say) is left as it was.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
fi
$SUDO apt-get -o DPkg::Lock::Timeout=900 update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends \
    nginx apache2 caddy nghttp2-server prometheus-blackbox-exporter
