#!/bin/sh
# Runs Fluent Bit as the aws-for-fluent-bit image does, with rustsink loaded beside AWS's
# own Go plugins: the image has no plugins file, so each plugin is given with `-e`.
# Under FireLens the ECS agent mounts the generated configuration at
# /fluent-bit/etc/fluent-bit.conf; on EKS the DaemonSet mounts its ConfigMap there.
set -eu
root=${FLUENT_BIT_ROOT:-/fluent-bit}
set -- -e "$root/rustsink/librustsink.so" "$@"
for plugin in "$root/firehose.so" "$root/cloudwatch.so" "$root/kinesis.so"; do
  if [ -f "$plugin" ]; then
    set -- -e "$plugin" "$@"
  fi
done
exec "$root/bin/fluent-bit" "$@" -c "${FLUENT_BIT_CONFIG:-$root/etc/fluent-bit.conf}"
