#!/usr/bin/env bash
# The package check that needs a running systemd, run by once-check.service as the only job of a
# throwaway container that scripts/test-deb boots from this machine's own OS: installs the
# package, checks the units (verify, exposure score), runs the server and the reaper under their
# sandbox, serves ports 80 and 443 through the shipped drop-ins (certificate files, then ACME from
# pebble), makes a key as deploy.md says, runs the socket-activation recipe (started by a
# connection, idle exit, started again), enables the timer, then removes and purges.
# Writes "passed" to /check/result when every step passed.
set -euo pipefail

units=(/lib/systemd/system/once.service /lib/systemd/system/once-reap.service
  /lib/systemd/system/once-reap.timer /lib/systemd/system/once.socket)
step() { echo "== $*"; }
fail() {
  echo "FAILED: $*"
  journalctl --no-pager -n 40 -u once.service -u once-reap.service || true
  exit 1
}
wait_healthy() {
  for _ in $(seq 1 100); do
    curl -fsS "$1/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "no answer on $1/healthz"
}

step "dpkg -i"
dpkg -i /check/once.deb

step "systemd-analyze verify"
verify_output=$(systemd-analyze verify "${units[@]}" 2>&1) || fail "verify failed: $verify_output"
[ -z "$verify_output" ] || fail "verify is not clean: $verify_output"

step "systemd-analyze security"
systemd-analyze security --no-pager once.service >/check/security.txt
exposure=$(tail -n 1 /check/security.txt)
echo "$exposure; what still counts:"
grep '✗' /check/security.txt | sed 's/  */ /g' || true
# "OK" or better (SAFE, PERFECT); MEDIUM, EXPOSED, UNSAFE and DANGEROUS fail.
grep -Eq ': [0-9.]+ (OK|SAFE|PERFECT)' <<<"$exposure" || fail "exposure worse than OK"

step "once.service serves, as its own dynamic user"
key="0123456789abcdef.$(head -c 32 /dev/urandom | base64 -w0 | tr '+/' '-_' | tr -d '=')"
install -m 0600 /dev/null /etc/once/env
echo "ONCE_BOOTSTRAP_KEY=$key" >/etc/once/env
systemctl start once.service
wait_healthy http://127.0.0.1:8080
export ONCE_SERVER=http://127.0.0.1:8080 ONCE_KEY="$key"
echo "sent from the packaged once" >/tmp/sent.txt
link=$(once send -q /tmp/sent.txt)
once get -q -o /tmp/received.txt "$link"
cmp /tmp/sent.txt /tmp/received.txt || fail "the file came back changed"
if once get -q -o /tmp/again.txt "$link" 2>/dev/null; then fail "a one-time link served twice"; fi
[ -L /var/lib/once ] || fail "/var/lib/once is not the DynamicUser symlink"
[ "$(stat -c '%U %a' /var/lib/private/once/once.db)" = "once 600" ] ||
  fail "once.db is $(stat -c '%U %a' /var/lib/private/once/once.db), not 'once 600'"
[ "$(systemctl show -p MainPID --value once.service)" != 0 ] || fail "no main process"

step "once-reap.service reaps beside the server, as the same user"
systemctl start once-reap.service
reap_log=$(journalctl --no-pager -u once-reap.service)
grep -q 'reaped [0-9]* shares' <<<"$reap_log" || fail "once reap printed no summary"
# Had the reaper run as another user, systemd would have handed the files to it.
[ "$(stat -c '%U' /var/lib/private/once/once.db)" = once ] || fail "the reaper took over the files"
link=$(once send -q /tmp/sent.txt) || fail "the server cannot write after a reaper pass"
once get -q -o /tmp/received-2.txt "$link"

step "port 80: refused without the drop-in, served with it"
echo 'bind = "127.0.0.1:80"' >/etc/once/once.toml
systemctl restart once.service || true
# Refused means the bind failed and systemd restarted the server (RestartSec=2s) at least once.
refused=
for _ in $(seq 1 100); do
  if curl -fsS http://127.0.0.1:80/healthz >/dev/null 2>&1; then
    fail "served port 80 without CAP_NET_BIND_SERVICE"
  fi
  if [ "$(systemctl show -p NRestarts --value once.service)" -ge 1 ]; then refused=1; break; fi
  sleep 0.1
done
[ -n "$refused" ] || fail "the server neither served port 80 nor failed to bind it"
systemctl stop once.service
mkdir -p /etc/systemd/system/once.service.d
cp /usr/share/doc/once/examples/low-port.conf /etc/systemd/system/once.service.d/
systemctl daemon-reload
systemctl restart once.service
wait_healthy http://127.0.0.1:80
systemd-analyze security --no-pager once.service | tail -n 1 >/check/security-low-port.txt
cat /check/security-low-port.txt

step "port 443 with TLS from root-only files, through the credentials drop-in"
mkdir -p /etc/letsencrypt/live/once.example.com
(cd /etc/letsencrypt/live/once.example.com && umask 077 &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=once.example.com -addext subjectAltName=DNS:once.example.com \
    -keyout privkey.pem -out fullchain.pem 2>/dev/null)
cp /usr/share/doc/once/examples/tls-credentials.conf /etc/systemd/system/once.service.d/
echo 'bind = "127.0.0.1:443"' >/etc/once/once.toml
systemctl daemon-reload
systemctl restart once.service
for _ in $(seq 1 100); do
  curl -fsS --cacert /etc/letsencrypt/live/once.example.com/fullchain.pem \
    --resolve once.example.com:443:127.0.0.1 https://once.example.com/healthz >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS --cacert /etc/letsencrypt/live/once.example.com/fullchain.pem \
  --resolve once.example.com:443:127.0.0.1 https://once.example.com/healthz >/dev/null ||
  fail "no HTTPS answer on port 443 with the certificate from the credentials"
systemd-analyze security --no-pager once.service | tail -n 1 >/check/security-tls.txt
cat /check/security-tls.txt

step "more keys: once keys create as the service's user, as deploy.md says"
second_key=$(systemd-run --quiet --wait --pipe -p DynamicUser=yes -p User=once \
  -p StateDirectory=once -p Environment=ONCE_CONFIG=/etc/once/once.toml \
  -p Environment=ONCE_DATA_DIR=/var/lib/once -p EnvironmentFile=-/etc/once/env \
  /usr/bin/once keys create --name second)
[ "$(stat -c '%U' /var/lib/private/once/once.db)" = once ] || fail "keys create took over the files"
list_shares() {
  curl -fsS --cacert /etc/letsencrypt/live/once.example.com/fullchain.pem \
    --resolve once.example.com:443:127.0.0.1 -H "Authorization: Bearer $1" \
    https://once.example.com/api/v1/shares >/dev/null 2>&1
}
list_shares "$second_key" || fail "the new key is refused"
! list_shares "fedcba9876543210.${second_key#*.}" || fail "a key that was never made is accepted"

step "ACME under the unit: a certificate from pebble, challenges and redirects on port 80"
# pebble's own HTTPS listener needs a certificate (Debian ships none): a CA and a leaf for
# 127.0.0.1, the CA handed to once as acme_ca_cert.
pebble_dir=/etc/once/pebble
mkdir -p "$pebble_dir"
(cd "$pebble_dir" &&
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=pebble-listener-ca -keyout ca.key -out ca.pem 2>/dev/null &&
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
    -keyout key.pem -out listener.csr 2>/dev/null &&
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >listener.ext &&
  openssl x509 -req -in listener.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile listener.ext -out cert.pem 2>/dev/null) || fail "cannot make pebble's certificate"
chmod 0644 "$pebble_dir/ca.pem"
printf '{"pebble": {"listenAddress": "127.0.0.1:14000", "managementListenAddress": "127.0.0.1:15000", "certificate": "%s/cert.pem", "privateKey": "%s/key.pem", "httpPort": 80, "tlsPort": 5001, "ocspResponderURL": "", "externalAccountBindingRequired": false}}\n' \
  "$pebble_dir" "$pebble_dir" >"$pebble_dir/config.json"
# No random sleeps before validating; the validation itself is real.
systemd-run --quiet --unit=pebble -E PEBBLE_VA_NOSLEEP=1 pebble -config "$pebble_dir/config.json"
for _ in $(seq 1 50); do
  curl -fsS --cacert "$pebble_dir/ca.pem" https://127.0.0.1:14000/dir >/dev/null 2>&1 && break
  sleep 0.1
done
rm /etc/systemd/system/once.service.d/tls-credentials.conf
{
  echo 'bind = "127.0.0.1:443"'
  echo 'http_bind = "127.0.0.1:80"'
  echo 'acme_domain = "localhost"'
  echo 'acme_email = "ops@example.com"'
  echo 'acme_directory = "https://127.0.0.1:14000/dir"'
  echo "acme_ca_cert = \"$pebble_dir/ca.pem\""
} >/etc/once/once.toml
systemctl daemon-reload
systemctl restart once.service
curl -fsS --cacert "$pebble_dir/ca.pem" https://127.0.0.1:15000/roots/0 >"$pebble_dir/root.pem" ||
  fail "pebble does not answer"
answered=
for _ in $(seq 1 150); do
  if curl -fsS --cacert "$pebble_dir/root.pem" --resolve localhost:443:127.0.0.1 \
    https://localhost/healthz >/dev/null 2>&1; then
    answered=1
    break
  fi
  sleep 0.2
done
[ -n "$answered" ] || fail "no HTTPS answer with a certificate from pebble"
redirect=$(curl -sS -o /dev/null -w '%{http_code} %{redirect_url}' http://localhost:80/s/abc)
[ "$redirect" = "308 https://localhost/s/abc" ] || fail "port 80 answered '$redirect', not a redirect"
[ "$(stat -c '%U' /var/lib/private/once/acme)" = once ] || fail "no ACME cache in the state directory"
systemctl stop pebble.service
rm -rf "$pebble_dir"

step "socket activation as deploy.md says: started by a connection, exits when idle, started again"
systemctl stop once.service
rm -f /etc/systemd/system/once.service.d/low-port.conf
: >/etc/once/once.toml
cp /usr/share/doc/once/examples/socket-activation.conf /etc/systemd/system/once.service.d/
# The shipped 5 minutes, shortened so the check does not wait that long.
printf '[Service]\nEnvironment=ONCE_EXIT_WHEN_IDLE=3s\n' \
  >/etc/systemd/system/once.service.d/zz-short-idle.conf
systemctl daemon-reload
systemctl disable --now once.service
systemctl enable --now once.socket
! systemctl is-active -q once.service || fail "once.service runs before any connection"
curl -fsS http://127.0.0.1:8080/healthz >/dev/null || fail "the first connection got no answer"
systemctl is-active -q once.service || fail "the first connection did not start once.service"
[ "$(systemctl show -p WatchdogUSec --value once.service)" = 30s ] || fail "no watchdog"
link=$(once send -q /tmp/sent.txt)
once get -q -o /tmp/received-3.txt "$link"
upload_url=$(once request --no-encrypt | grep -o 'http://127.0.0.1:8080/r/[^ ]*' | head -n 1)
[ -n "$upload_url" ] || fail "once request printed no upload URL"
stopped=
for _ in $(seq 1 150); do
  if ! systemctl is-active -q once.service; then stopped=1; break; fi
  sleep 0.1
done
[ -n "$stopped" ] || fail "once.service did not exit after 3 idle seconds"
[ "$(systemctl show -p Result --value once.service)" = success ] ||
  fail "the idle exit was not clean: $(systemctl show -p Result --value once.service)"
systemctl is-active -q once.socket || fail "once.socket went down with the service"
# The next connections start it again; what happened before the exit still holds.
if once get -q -o /tmp/again-3.txt "$link" 2>/dev/null; then
  fail "a link claimed before the idle exit served again"
fi
systemctl is-active -q once.service || fail "the next connection did not start once.service"
curl -fsS -T /tmp/sent.txt "$upload_url" >/dev/null ||
  fail "an upload URL made before the idle exit was refused after it"
systemctl disable --now once.socket
systemctl stop once.service
rm /etc/systemd/system/once.service.d/socket-activation.conf \
  /etc/systemd/system/once.service.d/zz-short-idle.conf
systemctl daemon-reload

step "enable: the server and the timer"
systemctl enable --now once.service once-reap.timer
systemctl is-enabled -q once.service || fail "once.service not enabled"
systemctl is-active -q once-reap.timer || fail "once-reap.timer not active"

step "dpkg -r stops and unloads, keeps the data; dpkg -P deletes it"
dpkg -r once
! systemctl is-active -q once.service || fail "once.service still runs after dpkg -r"
! systemctl is-active -q once-reap.timer || fail "once-reap.timer still runs after dpkg -r"
[ "$(systemctl show -p LoadState --value once.service)" = not-found ] ||
  fail "systemd still has once.service loaded"
[ -e /var/lib/private/once/once.db ] || fail "dpkg -r deleted the data"
dpkg -P once
[ ! -e /var/lib/private/once ] || fail "dpkg -P left the data"
[ ! -e /var/lib/once ] || fail "dpkg -P left the /var/lib/once link"
[ ! -e /etc/systemd/system/multi-user.target.wants/once.service ] || fail "dpkg -P left the enablement"
[ ! -e /etc/once ] || fail "dpkg -P left /etc/once"

echo passed >/check/result
