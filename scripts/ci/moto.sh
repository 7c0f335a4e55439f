# An S3 server (moto) on loopback for the S3 store's tests, sourced by .ci/run after the
# Python venv is set up: installs the pinned moto[server] into that venv if missing,
# starts moto_server on a free loopback port, waits until it answers, exports
# REASONGEN_S3_ENDPOINT (the tests create their own buckets and set dummy AWS_*
# credentials; moto checks no signature), and stops the server when the sourcing shell
# exits (a watcher, not an EXIT trap). With REASONGEN_REQUIRE_S3=1 the S3 tests fail
# rather than skip when no server is there.

moto_venv="$(dirname "$REASONGEN_PYTHON")"
if [ ! -x "$moto_venv/moto_server" ]; then
    "$moto_venv/pip" install --quiet --disable-pip-version-check \
        "$(grep -E '^moto\[server\]==' .ci/python-requirements.txt)"
fi

moto_port="$("$REASONGEN_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
moto_log="$(mktemp "${TMPDIR:-/tmp}/reasongen-moto.XXXXXX")"
"$moto_venv/moto_server" -H 127.0.0.1 -p "$moto_port" >"$moto_log" 2>&1 &
moto_pid=$!
moto_up() {
    "$REASONGEN_PYTHON" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$moto_port/', timeout=1)" 2>/dev/null
}
for _ in $(seq 1 300); do
    moto_up && break
    sleep 0.1
done
moto_up || { echo "moto: no answer on port $moto_port; see $moto_log" >&2; exit 1; }
export REASONGEN_S3_ENDPOINT="http://127.0.0.1:$moto_port"

# Stopped when the sourcing shell exits, whatever EXIT trap other scripts set: a
# watcher polls for that shell and then ends the server.
moto_shell=$$
(
    while kill -0 "$moto_shell" 2>/dev/null; do sleep 1; done
    kill "$moto_pid" 2>/dev/null
    rm -f "$moto_log"
) >/dev/null 2>&1 &

export REASONGEN_REQUIRE_S3=1
