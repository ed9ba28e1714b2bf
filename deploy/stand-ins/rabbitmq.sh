#!/bin/sh
# The entrypoint of the RabbitMQ stand-in: the default user from RABBITMQ_DEFAULT_USER and
# RABBITMQ_DEFAULT_PASS, as the official image takes them, then the broker in the foreground.
set -eu
cat > /etc/rabbitmq/rabbitmq.conf <<CONF
default_user = ${RABBITMQ_DEFAULT_USER}
default_pass = ${RABBITMQ_DEFAULT_PASS}
listeners.tcp.default = 5672
CONF
# One cookie for the broker and for rabbitmq-diagnostics run as root (the health check).
if [ ! -s /var/lib/rabbitmq/.erlang.cookie ]; then
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > /var/lib/rabbitmq/.erlang.cookie
fi
cp /var/lib/rabbitmq/.erlang.cookie /root/.erlang.cookie
chown -R rabbitmq:rabbitmq /var/lib/rabbitmq
chmod 400 /var/lib/rabbitmq/.erlang.cookie /root/.erlang.cookie
exec su rabbitmq -s /bin/sh -c "exec rabbitmq-server"
