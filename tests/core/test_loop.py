import torch

from evc_archive.core.loop import CodedPiece, prefer_residual, residual_quality_for


def _piece(nbytes: int, lpips: float) -> CodedPiece:
    return CodedPiece(bytes(nbytes), torch.zeros(1, 1, 3, dtype=torch.uint8), lpips, 30.0)


def test_prefer_residual_takes_the_cheaper_passing_then_the_better():
    assert prefer_residual(_piece(50, 0.1), _piece(500, 0.05), threshold=0.2)  # both pass: cheaper
    assert not prefer_residual(_piece(600, 0.1), _piece(500, 0.05), threshold=0.2)
    assert not prefer_residual(_piece(50, 0.3), _piece(500, 0.1), threshold=0.2)  # only intra passes
    assert prefer_residual(_piece(900, 0.1), _piece(500, 0.3), threshold=0.2)  # only the residual passes
    assert prefer_residual(_piece(900, 0.3), _piece(50, 0.4), threshold=0.2)  # neither: the better
    assert not prefer_residual(_piece(9, 0.5), _piece(900, 0.4), threshold=0.2)


def test_residual_quality_steps_up_the_codec_levels_and_clamps():
    assert residual_quality_for((1, 2, 3, 4, 5), 2, 2) == 4
    assert residual_quality_for((1, 2, 3, 4, 5), 4, 3) == 5
    assert residual_quality_for((1, 2, 3, 4, 5), 3, 0) == 3
    assert residual_quality_for((1, 2, 3), 1, None) is None
