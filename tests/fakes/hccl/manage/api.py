"""Double of CANN's `hccl.manage.api` (the hccl Python package that ships with CANN's fwkacllib,
not with the TF adapter).

The real module loads libhccl with ctypes and asks it (HcomGetRankId, HcomGetRankSize, ...); a
non-zero return raises ValueError('get rank id error. ret[<code>]'). HCCL answers only once
collective communication is initialised: GE does it at the first run of a graph on the device, or
`npu_bridge.estimator.npu_ops.initialize_system()` run in a session (what the adapter's own
`npu_init.init_resource` does before it calls get_rank_id; Ascend/tensorflow r1.6.0,
tf_adapter/python/npu_bridge/npu_init.py). CANN's API pages say the same: "must be called after
collective communication initialization is complete".

So this double raises exactly like that until the fake initialize_system op has run, and then
answers from the rank table (RANK_TABLE_FILE, `server_list[].device[].rank_id`) and RANK_ID, as
HCCL does; a RANK_ID missing from the table raises as HCCL refuses to initialise then.
"""
import json
import os

MAX_GROUP_NAME_LEN = 127
WORLD_GROUP = 'hccl_world_group'
HCCL_E_NOT_INITIALISED = 5  # a non-zero HcclResult; its value only shows in the message

_state = {'initialised': False}


def _set_initialised(value):
    """Called by the fake initialize_system / shutdown_system ops when a session runs them."""
    _state['initialised'] = bool(value)


def _check_group(group):
    if not isinstance(group, str):
        raise ValueError('group must be a python str')
    if not group:
        raise ValueError('group name is empty.')
    if len(group) > MAX_GROUP_NAME_LEN:
        raise ValueError('group name is invalid. group: ' + group[:MAX_GROUP_NAME_LEN])


def _table():
    path = os.environ['RANK_TABLE_FILE']
    with open(path) as f:
        table = json.load(f)
    servers = table['server_list']
    if int(table['server_count']) != len(servers):
        raise ValueError('%s: server_count %s but %d servers listed'
                         % (path, table['server_count'], len(servers)))
    return servers


def _world_size():
    """The world's size from the table, for the double's collectives (no libhccl call)."""
    return sum(len(server['device']) for server in _table())


def _me():
    """(server index, index within the server) of RANK_ID in the table."""
    rank = os.environ['RANK_ID']
    for s, server in enumerate(_table()):
        for d, device in enumerate(server['device']):
            if str(device['rank_id']) == rank:
                return s, d
    raise ValueError('RANK_ID=%s is not in %s' % (rank, os.environ['RANK_TABLE_FILE']))


def _answer(what, group, value):
    _check_group(group)
    if not _state['initialised']:
        raise ValueError('get %s error. ret[%d]' % (what, HCCL_E_NOT_INITIALISED))
    return value()


def get_rank_size(group=WORLD_GROUP):
    return _answer('rank size', group, _world_size)


def get_rank_id(group=WORLD_GROUP):
    def rank():
        _me()
        return int(os.environ['RANK_ID'])
    return _answer('rank id', group, rank)


def get_local_rank_size(group=WORLD_GROUP):
    return _answer('local rank size', group, lambda: len(_table()[_me()[0]]['device']))


def get_local_rank_id(group=WORLD_GROUP):
    return _answer('local rank id', group, lambda: _me()[1])
