import torch

from evc_archive.core.residual import apply_residual, residual_image


def test_an_uncoded_residual_rebuilds_the_frame_within_one_grey_level():
    g = torch.Generator().manual_seed(0)
    frame = torch.randint(0, 256, (16, 24, 3), generator=g, dtype=torch.uint8)
    prediction = torch.randint(0, 256, (16, 24, 3), generator=g, dtype=torch.uint8)
    rebuilt = apply_residual(prediction, residual_image(frame, prediction))
    error = frame.int() - rebuilt.int()
    assert rebuilt.dtype == torch.uint8 and error.min() >= 0 and error.max() <= 1


def test_extremes_fit_and_a_perfect_prediction_is_flat_grey():
    white, black = torch.full((2, 2, 3), 255, dtype=torch.uint8), torch.zeros((2, 2, 3), dtype=torch.uint8)
    assert residual_image(white, black).unique().tolist() == [255]
    assert residual_image(black, white).unique().tolist() == [0]
    assert torch.equal(apply_residual(black, residual_image(white, black)), torch.full_like(white, 254))
    assert torch.equal(apply_residual(white, residual_image(black, white)), black)
    assert residual_image(white, white).unique().tolist() == [128]
    assert torch.equal(apply_residual(white, torch.full_like(white, 128)), white)
