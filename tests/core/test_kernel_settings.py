"""core.kernel_settings: the settings' environments and labels, and the decode child's JSON line."""

from __future__ import annotations

import json

from evc_archive.core.kernel_settings import KernelSetting, cpu_matrix, decode_files, main
from tests.golden.recipe import EXPECTED, WITH_INTER, stream_path


def test_environment_sets_only_the_settings_variables():
    base = {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE", "ATEN_CPU_CAPABILITY": "avx512", "PATH": "/bin"}
    assert KernelSetting().environment(base) == {"PATH": "/bin"}
    env = KernelSetting("SSE41", "default", 2).environment(base)
    assert env == {"PATH": "/bin", "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default",
                   "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}


def test_cpu_matrix_is_thirteen_distinct_settings_with_distinct_labels():
    matrix = cpu_matrix()
    assert len(set(matrix)) == len({s.label for s in matrix}) == 13
    assert [s for s in matrix if not s.mkldnn] == [KernelSetting(threads=2, mkldnn=False)]
    assert KernelSetting("SSE41", "default", 1).label == "oneDNN SSE41, ATen default, 1 thread"
    assert KernelSetting(device="cuda").label == "cuda"


def test_decode_child_prints_the_golden_hash_and_one_fingerprint_per_frame(capsys):
    path = stream_path(WITH_INTER)
    main([str(path)])
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    golden = json.loads(EXPECTED.read_text())[WITH_INTER]
    assert line["streams"][path.name]["sha256"] == golden["sha256"]
    assert len(line["streams"][path.name]["frames"]) == golden["frames"] and line["mkldnn"] and line["device"] == "cpu"
    assert decode_files([path], mkldnn=False)[path.name]["sha256"] == golden["sha256"]
