# Shared by the bench/ scripts. Sourced, not run.

# start_server COMMAND PORT [CPU]: starts COMMAND (its {port} replaced by PORT, split into
# words), pinned to CPU when given, and waits (at most 10 s) until PORT accepts connections.
# Sets server_pid.
start_server() {
  local cmd="${1//\{port\}/$2}" cpu="${3:-}"
  if [ -n "$cpu" ]; then
    # shellcheck disable=SC2086 # the command is split into words on purpose
    taskset -c "$cpu" $cmd >/dev/null 2>&1 &
  else
    # shellcheck disable=SC2086
    $cmd >/dev/null 2>&1 &
  fi
  server_pid=$!
  for _ in $(seq 100); do
    (echo >"/dev/tcp/127.0.0.1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "server did not listen on port $2: $cmd" >&2
  return 1
}

# stop_server: kills and reaps the server started last.
stop_server() {
  kill "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=""
}
