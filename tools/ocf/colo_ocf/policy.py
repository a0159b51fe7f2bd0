"""The agent's decisions, as pure functions of what it has found out: no
process, file or cluster command here, so tests/unit/test_ocf_policy.py
checks each one without a cluster."""

# colo-secondary's migration states while a primary protects into it
IN_SESSION = ("active", "colo")
# colo-primary's session is over
ENDED = ("failed", "cancelled", "completed")
# the first synchronisation copies all of RAM and the disks: a session
# that has not reached COLO yet is stalled only after this long
FIRST_SYNC_S = 600.0


def has_checkpoint(colo):
    """colo-secondary (its query-colo-status @colo) holds a committed
    checkpoint: of this session, or recovered from its folder after a
    crash of its own."""
    return colo.get("x-checkpoints", 0) >= 1 or "x-recovered" in colo


def boot_allowed(me, vm_node, standby, initial_node):
    """(may the VM boot from its disks on @me, why not).  @vm_node: the
    CIB's node whose disks hold the VM's latest state; @standby: the node
    whose standby holds a checkpoint of the running VM."""
    if vm_node == me:
        # its disks are the newest; a standby's checkpoint, if any, is
        # older than they are (and outranks booting by its score)
        return True, ""
    if vm_node:
        return False, "the VM's latest disks are on " + vm_node
    if standby:
        return False, "a standby of the VM is on " + standby
    return (not initial_node or initial_node == me), \
        "initial_node is " + initial_node


def promotion(me, standby, colo, boot_ok):
    """How @me becomes the VM's node: "failover" (from its standby's
    checkpoint), "boot" (from the disks) or "refuse".  @colo: the local
    standby's query-colo-status, or None; @boot_ok: boot_allowed()'s
    verdict."""
    if standby == me and colo is not None and has_checkpoint(colo):
        return "failover"
    return "boot" if boot_ok else "refuse"


def standby_verdict(me, standby, status, colo, stalled):
    """What the unpromoted side is, from the CIB's @standby, its
    migration @status and query-colo-status @colo: "standby" (holds the
    running VM's checkpoint: may be promoted), "waiting" (no primary yet:
    may boot the VM if nothing newer is anywhere), "syncing" (being
    protected into, not yet the standby) or "lost" (its primary is gone
    and it is not the one that may take over)."""
    if standby == me and has_checkpoint(colo):
        # the primary says our checkpoint is the VM's: keep it, whatever
        # happened to the link, until Pacemaker decides
        return "standby"
    if status in ("none", "setup"):
        return "waiting"
    in_session = status == "active" or (status == "colo" and
                                        colo.get("mode") == "secondary")
    if in_session and not (stalled and colo.get("x-checkpoints", 0) > 0):
        return "syncing"
    return "lost"


def session_verdict(status, checkpoints, idle_s, stall_timeout_s):
    """colo-primary's session, from its query-migrate @status, its
    @checkpoints and the seconds @idle_s since one last committed:
    ("end", why) when it is over or stalled, ("committed", None) when the
    peer holds a committed checkpoint, else ("running", None)."""
    limit = stall_timeout_s
    if status != "colo" and checkpoints == 0:
        limit = max(limit, FIRST_SYNC_S)
    stalled = idle_s > limit
    if status in ENDED or stalled:
        return "end", "stalled" if stalled else "session " + str(status)
    if checkpoints >= 1 and status == "colo":
        return "committed", None
    return "running", None


def release_verdict(peer_state, waited_s, settle_s):
    """(may the VM's held output go out, why not), once a session with
    the standby on a peer in @peer_state ("online", "offline", "unclean",
    "unknown") was lost @waited_s seconds ago.  Output the standby has
    not got goes out only when that standby can no longer be promoted:
    its node fenced or gone, or still a member after corosync's
    membership has had @settle_s to settle (then it shares our CIB, where
    the standby property is already gone)."""
    if peer_state in ("unclean", "unknown"):
        return False, "peer is %s: output held until it is fenced" \
            % peer_state
    if peer_state == "online" and waited_s < settle_s:
        return False, "peer online: membership still settling"
    return True, ""
