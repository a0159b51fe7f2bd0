"""The agent's parameters (OCF_RESKEY_*) and its OCF meta-data."""

import os



PARAMS = [
    # name, default, required, short, long
    ("qemu_args", "", False, "the VM's devices and options",
     "QEMU arguments of the VM, shell-quoted, as on a QEMU command line: "
     "-kernel/-bios, -device, -serial, -append ... The agent adds the "
     "memory (a shared file in ram_dir), -qmp, -name, the disks and the "
     "NICs; the same arguments serve the failover QEMU. Required unless "
     "libvirt_xml is set."),
    ("libvirt_xml", "", False, "or: the VM as a libvirt domain",
     "Instead of qemu_args: the libvirt domain XML of the VM, the same file "
     "on both nodes (its RAM in a shared file: <memoryBacking><source "
     "type='file'/><access mode='shared'/></memoryBacking>; "
     "docs/libvirt.rst). libvirt starts and stops it; failover restores it "
     "into the standby's libvirt. The XML names the devices and NICs: "
     "disks and nics stay empty."),
    ("libvirt_uri", "qemu:///system", False, "the libvirt of libvirt_xml",
     "libvirt's URI on each node."),
    ("qemu_args_file", "", False, "a file with the VM's QEMU arguments",
     "Read the arguments from this file (shell-quoted, newlines are "
     "spaces) and append them to qemu_args."),
    ("qemu", "qemu-system-x86_64", False, "the QEMU binary", "QEMU."),
    ("memory", "256", False, "guest RAM in MiB", "Guest RAM in MiB."),
    ("machine", "pc", False, "the machine type",
     "QEMU machine type of a booted VM (a resumed one keeps its own)."),
    ("ram_dir", "", False, "the standby's RAM folder",
     "Where the VM's RAM lives as a shared file (the standby's checkpoint "
     "cache and record too); tmpfs. Default /dev/shm/colo-standby/RSC."),
    ("state_dir", "", False, "logs of this resource",
     "Logs of QEMU, colo-primary, colo-secondary and the agent. Default "
     "/var/lib/colo-standby/RSC."),
    ("disks", "", False, "the VM's disks: NODE=IMAGE ...",
     "Space-separated NODE=IMAGE: a raw image per block node, at the same "
     "path and of the same size on both nodes; qemu_args names the "
     "devices (-device virtio-blk-pci,drive=NODE). Replicated per "
     "checkpoint."),
    ("nics", "", False, "the VM's NICs: bridge=BR,mac=MAC[,model=M] ...",
     "Space-separated NIC specs: bridge=BR,mac=MAC[,model=virtio-net-pci]"
     "[,tap=NAME]. The agent creates the tap on BR on each node; the "
     "VM keeps its MAC across failover. Output is held until its "
     "checkpoint commits."),
    ("addresses", "", False, "node=address of the COLO link",
     "Space-separated NODE=ADDRESS: where each node's colo-secondary "
     "listens (the replication link). Default: the node name."),
    ("migration_port", "8890", False, "checkpoint stream port",
     "TCP port of colo-secondary's incoming migration."),
    ("nbd_port", "10809", False, "disk replication port",
     "TCP port of colo-secondary's NBD server (disks)."),
    ("tls_dir", "", False, "x509 credentials of the COLO link",
     "A folder in QEMU's tls-creds-x509 layout: ca-cert.pem, "
     "server-cert.pem and server-key.pem (this node's certificate, valid "
     "for its address in addresses), client-cert.pem and client-key.pem. "
     "Set: checkpoints and disk writes between the nodes go over TLS, "
     "each side checking the other's certificate against ca-cert.pem "
     "(use a CA of the cluster's own). Empty: plain TCP."),
    ("checkpoint_interval", "100", False, "ms between checkpoints",
     "colo-primary --x-checkpoint-delay."),
    ("stall_timeout", "10000", False, "ms without a checkpoint = lost",
     "A session that commits no checkpoint for this long is taken as lost "
     "(a link that drops packets rather than refusing them)."),
    ("initial_node", "", False, "where the VM boots the first time",
     "The node whose disk images are the VM's when the cluster has never "
     "run it. Empty: any (the images must then be identical)."),
    ("colo_secondary", "colo-secondary", False, "colo-secondary binary",
     "Path of colo-secondary."),
    ("colo_primary", "colo-primary", False, "colo-primary binary",
     "Path of colo-primary."),
]


ACTIONS = [
    # name, timeout, extra attributes
    ("start", 120, ""),
    ("stop", 60, ""),
    ("monitor", 60, ' interval="3s" role="Promoted"'),
    ("monitor", 60, ' interval="4s" role="Unpromoted"'),
    ("promote", 180, ""),
    ("demote", 60, ""),
    ("notify", 60, ""),
    ("meta-data", 5, ""),
    ("validate-all", 20, ""),
]


def param(name):
    for n, default, _, _, _ in PARAMS:
        if n == name:
            return os.environ.get("OCF_RESKEY_" + name, default) or default
    raise KeyError(name)


def meta_data():
    out = ['<?xml version="1.0"?>',
           '<!DOCTYPE resource-agent SYSTEM "ra-api-1.dtd">',
           '<resource-agent name="colo" version="1.0">',
           '<version>1.1</version>',
           '<longdesc lang="en">A QEMU VM kept in step with a standby on a '
           'second node by colo-standby (COLO checkpoints of RAM, devices '
           'and disks; network output held until its checkpoint commits). '
           'Run as a promotable clone with promoted-max=1, clone-max=2 and '
           'notify=true, with fencing: the promoted instance runs the VM, '
           'the unpromoted one the standby; promotion resumes the VM from '
           'the last committed checkpoint.</longdesc>',
           '<shortdesc lang="en">VM fault tolerance with colo-standby'
           '</shortdesc>', '<parameters>']
    for name, default, required, short, long in PARAMS:
        out.append('<parameter name="%s" unique="0" required="%d">'
                   % (name, 1 if required else 0))
        out.append('<longdesc lang="en">%s</longdesc>' % xml_escape(long))
        out.append('<shortdesc lang="en">%s</shortdesc>' % xml_escape(short))
        out.append('<content type="string" default="%s"/>'
                   % xml_escape(default))
        out.append('</parameter>')
    out += ['</parameters>', '<actions>']
    for name, timeout, extra in ACTIONS:
        out.append('<action name="%s" timeout="%ds"%s/>'
                   % (name, timeout, extra))
    out += ['</actions>', '</resource-agent>']
    print("\n".join(out))


def xml_escape(s):
    return (s.replace("&", "&amp;").replace("<", "&lt;")
            .replace(">", "&gt;").replace('"', "&quot;"))
