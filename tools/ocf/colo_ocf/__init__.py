"""ocf:colo-standby:colo, the OCF resource agent of colo-standby, as
modules (the entry point is tools/ocf/colo):

  ocf      exit codes, scores, the resource's folders, log, commands
  params   its parameters and meta-data
  policy   its decisions, pure functions (unit-tested without a cluster)
  qmp      the QMP client (the tests' too)
  procs    our daemons: start, record, stop
  cib      the cluster: nodes, CIB facts, scores, the peer's state
  vm       the VM's QEMU: arguments, boot, stop
  standby  colo-secondary and failover (the unpromoted side)
  protect  colo-primary and held output (the promoted side)
  actions  the OCF actions and main()
"""
