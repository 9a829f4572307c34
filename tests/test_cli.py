"""Command lines: a positional argument a script does not take is refused in one line, never
ignored (`python3 test_Sony.py photo.dng` used to re-run the default list and exit 0)."""
import os

import pytest

from conftest import run_script


@pytest.mark.parametrize('script,message', [
    ('test_Sony.py', 'test_Sony.py reads its pairs from --test_list (for your own raw files use '
                     'scripts/enhance.py)'),
    ('train_Sony.py', 'train_Sony.py takes flags only (it reads its pairs from --train_list)'),
    ('eval.py', 'eval.py takes flags only (it scores the PNGs in --result_dir)'),
    ('scripts/export_model.py', 'export_model.py takes flags only (the model comes from '
                                '--checkpoint_dir)'),
])
def test_a_positional_argument_is_refused_not_ignored(tmp_path, script, message):
    proc = run_script(script, 'photo.dng', cwd=str(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == 'error: unexpected argument photo.dng: ' + message
    assert os.listdir(str(tmp_path)) == []  # nothing started, nothing written
