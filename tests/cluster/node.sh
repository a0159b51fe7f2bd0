#!/bin/bash
# One node of the test cluster (tests/functional/test_cluster.py), run as
#   ip netns exec NETNS unshare -m -u --propagation private node.sh NAME DIR
# Its own hostname, and private mounts of everything corosync, pacemaker
# and the agent keep per node, from DIR (made by the test):
#   DIR/etc-corosync      /etc/corosync (corosync.conf)
#   DIR/lib-pacemaker     /var/lib/pacemaker (the CIB)
#   DIR/lib-corosync      /var/lib/corosync
#   DIR/log-pacemaker     /var/log/pacemaker
#   DIR/log-corosync      /var/log/corosync
#   DIR/srv               /srv (the VM's images, logs and serial port)
# tmpfs on /run and /dev/shm (gone with the node, as after a reboot), the
# test's fence agent in /usr/sbin and the agent in /usr/lib/ocf/resource.d
# (read-only overlays: the host's files stay as they are).  Then corosync
# and pacemakerd, in the foreground of this script; killing every process
# of the network namespace is this node's power switch.
set -euo pipefail
name=$1
dir=$2
shared=$(dirname "$dir")

hostname "$name"
mount -t tmpfs -o mode=755 tmpfs /run
mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mkdir -p /run/lock /run/crm /run/corosync
chown hacluster:haclient /run/crm
mount --bind "$dir/etc-corosync" /etc/corosync
mount --bind "$dir/lib-pacemaker" /var/lib/pacemaker
mount --bind "$dir/lib-corosync" /var/lib/corosync
mount --bind "$dir/log-pacemaker" /var/log/pacemaker
mount --bind "$dir/log-corosync" /var/log/corosync
mount --bind "$dir/srv" /srv
mount -t overlay overlay -o "lowerdir=$shared/sbin:/usr/sbin" /usr/sbin
mount -t overlay overlay \
    -o "lowerdir=$shared/ocf:/usr/lib/ocf/resource.d" /usr/lib/ocf/resource.d
ip link set lo up

export PCMK_logfile=/var/log/pacemaker/pacemaker.log
export PCMK_debug=no
corosync -f &
corosync_pid=$!
for _ in $(seq 100); do
    corosync-cfgtool -s >/dev/null 2>&1 && break
    sleep 0.1
done
pacemakerd &
pacemaker_pid=$!
echo "node $name: corosync $corosync_pid, pacemakerd $pacemaker_pid"
wait
