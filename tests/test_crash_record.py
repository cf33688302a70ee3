"""A crash that no Python code survives (a segmentation fault in a native library) still
leaves its traceback in the run's log (wsss_core.console.record_crashes)."""
from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

CRASHING = textwrap.dedent('''
    import faulthandler, logging, sys
    from wsss_core import console
    work_dir = sys.argv[1]
    console.attach_run_log(work_dir)
    console.record_crashes(work_dir)
    logging.getLogger('wsss').info('before the crash')

    def inside_a_stage():
        faulthandler._sigsegv()      # what torch's crashing kernel did

    inside_a_stage()
''')


def test_segfault_traceback_lands_in_the_run_log(tmp_path):
    out = subprocess.run([sys.executable, '-c', CRASHING, str(tmp_path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == -signal.SIGSEGV
    log = (tmp_path / 'wsss-run.log').read_text()
    assert log.index('before the crash') < log.index('Fatal Python error: Segmentation fault')
    assert 'inside_a_stage' in log             # the Python frame that was running


def test_the_run_command_records_crashes():
    """wsss-run turns the record on where it opens the run's log."""
    import inspect

    from wsss_core import cli
    source = inspect.getsource(cli)
    assert source.index('console.attach_run_log(work_dir)') < \
        source.index('console.record_crashes(work_dir)')
