#!/usr/bin/env bash
# The test command: installs what the tests drive and a fresh machine lacks
# (OpenSSH client and server, socat, rsync, redis-server, openssl, systemd's
# systemd-analyze; boto3, the AWS CLI, mssh/msftp from ec2instanceconnectcli,
# awscrt, prometheus_client, selenium; dpkg-dev, lintian and cargo-deb for
# the Debian packages' test; Chromium and ChromeDriver for the browser
# console's test; npm, which the build uses to fetch xterm.js), then runs
# every test.
# Some tests run sshd and mount a tmpfs, so run it as root (or in a
# throwaway VM or container).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v ssh-keygen >/dev/null || missing+=(openssh-client)
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v socat >/dev/null || missing+=(socat)
command -v rsync >/dev/null || missing+=(rsync)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v openssl >/dev/null || missing+=(openssl)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v python3 >/dev/null || missing+=(python3 python3-pip)
# tests/packages.rs: cargo-deb's $auto dependencies ask dpkg-shlibdeps.
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v lintian >/dev/null || missing+=(lintian)
# tests/console.rs drives the browser console in headless Chromium.
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -x /usr/bin/chromedriver ] || missing+=(chromium-driver)
# build.rs fetches the console's xterm.js with `npm ci` (console/package-lock.json).
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! python3 -c 'import boto3' 2>/dev/null || ! command -v aws >/dev/null; then
  # Debian's own Python refuses pip installs outside a venv (PEP 668);
  # the tests need these two packages importable by python3 itself.
  python3 -m pip install --quiet --disable-pip-version-check 'boto3>=1.34' 'awscli>=1.32' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'boto3>=1.34' 'awscli>=1.32'
fi

# The official one-step clients (mssh, msftp), at the version the tests
# were written against; its own requirements (botocore, cryptography) are
# unpinned minimums that the boto3 above already satisfies.
if ! python3 -c 'import ec2instanceconnectcli as c; assert c.__version__ == "1.0.3"' 2>/dev/null \
  || ! command -v mssh >/dev/null || ! command -v msftp >/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'ec2instanceconnectcli==1.0.3' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'ec2instanceconnectcli==1.0.3'
fi

# awscrt, at the version the AWS CLI v2 2.36.x pins: its WebSocket client
# is what `aws ec2-instance-connect open-tunnel` uses, and what
# tests/clients/eice_open_tunnel.py drives against the tunnel listener.
if ! python3 -c 'import awscrt, importlib.metadata as m; assert m.version("awscrt") == "0.36.0"' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'awscrt==0.36.0' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'awscrt==0.36.0'
fi

# Prometheus's own Python client, whose text parser reads /metrics in the
# diagnostics tests.
if ! python3 -c 'import importlib.metadata as m; assert m.version("prometheus_client") == "0.26.0"' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'prometheus_client==0.26.0' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'prometheus_client==0.26.0'
fi

# Selenium drives Chromium through Debian's chromedriver in tests/console.rs.
if ! python3 -c 'import importlib.metadata as m; assert m.version("selenium") == "4.38.0"' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check 'selenium==4.38.0' \
    || python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'selenium==4.38.0'
fi

# cargo-deb builds the .debs of tests/packages.rs (packaging/README.md).
# Pinned; built from source, about six minutes on two cores.
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb 3.8.0" ]; then
  cargo install cargo-deb --version 3.8.0 --locked
fi

cargo test --workspace --locked "$@"
