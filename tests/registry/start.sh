#!/usr/bin/env bash
# Starts a throw-away OCI registry (Debian's docker-registry, distribution
# 2.8) on 127.0.0.1 with its storage in DIR, on a free port.
#
#   tests/registry/start.sh DIR [--htpasswd USER:PASSWORD] [--tls] [--client-certs]
#
#   --htpasswd      basic auth for every repository (bcrypt htpasswd file)
#   --tls           HTTPS with a certificate for 127.0.0.1, localhost and
#                   registry.test, signed by a CA made here (DIR/ca.crt);
#                   DIR/client.crt + DIR/client.key is a client pair of that CA
#   --client-certs  with --tls: the registry requires a client certificate
#
# Prints the port.  DIR holds: port, pid, config.yml, storage/, registry.log,
# and with --tls ca.crt, ca.key, server.{crt,key}, client.{crt,key}.
# Stop it with tests/registry/stop.sh DIR.
#
# Needs: docker-registry, curl, openssl (--tls), and python3's crypt module or
# htpasswd (apache2-utils) for --htpasswd.
set -euo pipefail

usage() { echo "usage: $0 DIR [--htpasswd USER:PASSWORD] [--tls] [--client-certs]" >&2; exit 2; }
[ $# -ge 1 ] || usage
dir=$1
shift
htpasswd= tls= client=
while [ $# -gt 0 ]; do
	case $1 in
	--htpasswd) [ $# -ge 2 ] || usage; htpasswd=$2; shift 2 ;;
	--tls) tls=1; shift ;;
	--client-certs) client=1; shift ;;
	*) usage ;;
	esac
done
[ -z "$client" ] || [ -n "$tls" ] || { echo "$0: --client-certs needs --tls" >&2; exit 2; }
command -v docker-registry >/dev/null || { echo "$0: docker-registry is not installed" >&2; exit 1; }

mkdir -p "$dir/storage"
dir=$(cd "$dir" && pwd)

if [ -n "$tls" ]; then
	(
		cd "$dir"
		ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
		# shellcheck disable=SC2086
		openssl req -x509 $ec -keyout ca.key -out ca.crt -days 2 -subj "/CN=berth test CA" \
			-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
		# shellcheck disable=SC2086
		openssl req $ec -keyout server.key -out server.csr -subj "/CN=registry.test" 2>/dev/null
		printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:registry.test" \
			"basicConstraints=CA:FALSE" "keyUsage=digitalSignature" "extendedKeyUsage=serverAuth" >server.ext
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
			-days 2 -extfile server.ext 2>/dev/null
		# shellcheck disable=SC2086
		openssl req $ec -keyout client.key -out client.csr -subj "/CN=berth test client" 2>/dev/null
		printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=digitalSignature" "extendedKeyUsage=clientAuth" >client.ext
		openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt \
			-days 2 -extfile client.ext 2>/dev/null
		rm -f server.csr client.csr server.ext client.ext ca.srl
	)
fi

if [ -n "$htpasswd" ]; then
	user=${htpasswd%%:*}
	pass=${htpasswd#*:}
	if python3 -c 'import crypt' 2>/dev/null; then
		# bcrypt, which is all the registry accepts ("$2b$"; Go's bcrypt reads it), at its
		# lowest cost (4): the registry checks the password on every request, and at the
		# default cost (12) that is a quarter of a second each
		USER_=$user PASS_=$pass python3 -W ignore -c '
import crypt, os
print(os.environ["USER_"] + ":" + crypt.crypt(os.environ["PASS_"], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' >"$dir/htpasswd"
	elif command -v htpasswd >/dev/null; then
		htpasswd -nbB -C 4 "$user" "$pass" | sed '/^$/d' >"$dir/htpasswd"
	else
		echo "$0: --htpasswd needs python3 (crypt module) or htpasswd (apache2-utils)" >&2
		exit 1
	fi
fi

free_port() {
	local p i
	for i in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	return 1
}

for attempt in 1 2 3 4 5; do
	port=$(free_port)
	{
		echo "version: 0.1"
		echo "log: {level: error, accesslog: {disabled: true}}"
		echo "storage:"
		echo "  filesystem: {rootdirectory: $dir/storage}"
		echo "  delete: {enabled: true}"
		echo "  maintenance: {uploadpurging: {enabled: false}}"
		echo "http:"
		echo "  addr: 127.0.0.1:$port"
		echo "  secret: berth-test-secret"
		if [ -n "$tls" ]; then
			echo "  tls:"
			echo "    certificate: $dir/server.crt"
			echo "    key: $dir/server.key"
			[ -z "$client" ] || echo "    clientcas: [$dir/ca.crt]"
		fi
		if [ -n "$htpasswd" ]; then
			echo "auth:"
			echo "  htpasswd: {realm: berth-test, path: $dir/htpasswd}"
		fi
	} >"$dir/config.yml"
	setsid docker-registry serve "$dir/config.yml" >"$dir/registry.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$dir/pid"
	scheme=http
	curl_args=(-s -o /dev/null -w '%{http_code}')
	if [ -n "$tls" ]; then
		scheme=https
		curl_args+=(--cacert "$dir/ca.crt")
		[ -z "$client" ] || curl_args+=(--cert "$dir/client.crt" --key "$dir/client.key")
	fi
	for i in $(seq 1 100); do
		code=$(curl "${curl_args[@]}" "$scheme://127.0.0.1:$port/v2/" 2>/dev/null || true)
		if [ "$code" = 200 ] || [ "$code" = 401 ]; then
			echo "$port" >"$dir/port"
			echo "$port"
			exit 0
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	# not up: the port was taken in the meantime, or it failed; try again
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
done
echo "$0: the registry did not start; see $dir/registry.log:" >&2
cat "$dir/registry.log" >&2
exit 1
