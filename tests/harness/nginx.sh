#!/bin/bash
# tests/harness/nginx.sh: a throw-away HTTP binary cache for the tests: Debian's nginx with
# WebDAV PUT (dav_methods PUT, parent directories created), on 127.0.0.1 and a free port,
# serving DIR/root.  While DIR/fail exists every request is answered with HTTP 500 (a
# cache that is down for a while).  With NGINX_RATE set (nginx's limit_req rate, e.g.
# 1r/s) requests are answered no faster than that, each one waiting its turn (a slow
# cache).
#
#   eval "$(tests/harness/nginx.sh start DIR)"   exports NGINX_DIR NGINX_PORT NGINX_URL
#   tests/harness/nginx.sh stop DIR               stop it (DIR is left to the caller)
set -eu
command -v nginx >/dev/null || { echo "nginx.sh: nginx not installed" >&2; exit 1; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

case "${1:-}" in
start)
  D=${2:?usage: nginx.sh start DIR}
  mkdir -p "$D/root" "$D/tmp" "$D/logs"
  D=$(cd "$D" && pwd)
  port=$(free_port)
  zone= limit=
  if [ -n "${NGINX_RATE:-}" ]; then
    zone="limit_req_zone \$server_port zone=slow:1m rate=$NGINX_RATE;"
    limit="limit_req zone=slow burst=10000;"
  fi
  cat >"$D/nginx.conf" <<CONF
daemon on;
worker_processes 1;
pid $D/nginx.pid;
error_log $D/logs/error.log;
user root;
events { worker_connections 256; }
http {
  access_log $D/logs/access.log;
  client_body_temp_path $D/tmp;
  proxy_temp_path $D/tmp;
  fastcgi_temp_path $D/tmp;
  uwsgi_temp_path $D/tmp;
  scgi_temp_path $D/tmp;
  client_max_body_size 0;
  $zone
  server {
    listen 127.0.0.1:$port;
    root $D/root;
    location / {
      if (-f $D/fail) { return 500; }
      $limit
      dav_methods PUT;
      create_full_put_path on;
      dav_access user:rw group:r all:r;
    }
  }
}
CONF
  nginx -c "$D/nginx.conf" -p "$D" -e "$D/logs/error.log" 2>"$D/logs/start.log" || {
    cat "$D/logs/start.log" "$D/logs/error.log" >&2
    exit 1
  }
  for _ in $(seq 50); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
  done
  echo "export NGINX_DIR=$D NGINX_PORT=$port NGINX_URL=http://127.0.0.1:$port"
  ;;
stop)
  D=${2:?usage: nginx.sh stop DIR}
  if [ -f "$D/nginx.pid" ]; then
    kill "$(cat "$D/nginx.pid")" 2>/dev/null || true
    for _ in $(seq 50); do [ -f "$D/nginx.pid" ] || break; sleep 0.1; done
  fi
  ;;
*)
  echo "usage: nginx.sh start DIR | stop DIR" >&2
  exit 2
  ;;
esac
