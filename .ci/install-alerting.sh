#!/bin/sh
# Debian's prometheus and prometheus-alertmanager for the alerting tests: the tests start their
# own instances on loopback, so the packages' services must never start (a temporary
# policy-rc.d that answers 101 "action forbidden"). Idempotent: does nothing when installed.
set -eu
if [ -x /usr/bin/prometheus-alertmanager ] && [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; then
    echo "alerting already installed: $(/usr/bin/prometheus --version 2>&1 | head -n1)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
POLICY=/usr/sbin/policy-rc.d
# An existing policy (a container image's own "exit 101") is left as it is; ours goes afterwards.
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod 755 "$POLICY"
    trap '$SUDO rm -f "$POLICY"' EXIT
fi
$SUDO apt-get -o DPkg::Lock::Timeout=900 update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=900 install -y --no-install-recommends \
    prometheus prometheus-alertmanager
/usr/bin/prometheus --version 2>&1 | head -n1
/usr/bin/prometheus-alertmanager --version 2>&1 | head -n1
