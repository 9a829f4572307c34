"""Double of `npu_bridge.estimator.npu.npu_common.NPUBasics` (r1.6.0:
tf_adapter/python/npu_bridge/estimator/npu/npu_common.py).

The real class is a process-wide singleton whose job info is read once: from a JSON file (the
optimizer passes the name "", which never opens), then from the environment, where JOB_ID is
required. Without JOB_ID the job info is None, and the first size() - which the distributed
optimizer's allreduce() calls while building the graph for more than one rank - fails with
AttributeError: 'NoneType' object has no attribute '_rank_size'. RANK_SIZE that is not all
digits counts as 1.
"""
import os


class JobInfo(object):
    def __init__(self, job_id=0, rank_table_file=None, rank_size=1):
        self._job_id = job_id
        self._rank_table_file = rank_table_file
        self._rank_size = rank_size


class NPUBasics(object):
    __instance = None
    __has_init = False

    def __new__(cls, file_name):
        if not cls.__instance:
            cls.__instance = object.__new__(cls)
        return cls.__instance

    def __init__(self, file_name):
        if not self.__has_init:
            self._job_info = self._read_job_info(file_name)
            self.__has_init = True

    @property
    def jobinfo(self):
        return self._job_info

    def size(self):
        return self._job_info._rank_size

    def _read_job_info(self, file_name):
        try:
            with open(file_name) as f:  # the real one parses a CSA job file; "" never opens
                f.read()
            raise NotImplementedError('the double does not read job files')
        except IOError:
            job_id = os.getenv('JOB_ID', '')
            if job_id == '':
                return None  # the real one logs "Error:can not get job config from env"
            rank_size = os.getenv('RANK_SIZE', '1')
            if not rank_size.isdigit():
                rank_size = 1
            return JobInfo(job_id=job_id, rank_table_file=os.getenv('RANK_TABLE_FILE', ''),
                           rank_size=int(rank_size))
