"""Fake `hccl.manage.api`: rank, size and local rank read from the rank table like HCCL does.

The rank table is the JSON of scripts/rank_table_8p.json (`server_list[].device[].rank_id`).
Disagreement between the table and RANK_ID raises, as HCCL refuses to initialise then.
"""
import json
import os


def _table():
    path = os.environ['RANK_TABLE_FILE']
    with open(path) as f:
        table = json.load(f)
    servers = table['server_list']
    if int(table['server_count']) != len(servers):
        raise ValueError('%s: server_count %s but %d servers listed'
                         % (path, table['server_count'], len(servers)))
    return servers


def _me():
    """(server index, index within the server) of RANK_ID in the table."""
    rank = os.environ['RANK_ID']
    for s, server in enumerate(_table()):
        for d, device in enumerate(server['device']):
            if str(device['rank_id']) == rank:
                return s, d
    raise ValueError('RANK_ID=%s is not in %s' % (rank, os.environ['RANK_TABLE_FILE']))


def get_rank_size():
    return sum(len(server['device']) for server in _table())


def get_rank_id():
    _me()
    return int(os.environ['RANK_ID'])


def get_local_rank_id():
    return _me()[1]
