"""Learning-curve sizes that come to no document, or to more than the training split."""

from __future__ import annotations

import warnings

import pytest

from scalecode.curves import CurveSizeWarning, curve_sizes
from scalecode.errors import ScalecodeError


def test_a_fraction_that_rounds_to_no_document_is_an_error_naming_the_setting():
    with pytest.raises(ScalecodeError, match=r"evaluation\.learning_curve\.sizes: 0\.0001 of the 3592"):
        curve_sizes([0.0001], 3592)
    with pytest.raises(ScalecodeError, match="rounds to none"):
        curve_sizes([0.5, 0.0001], 3592)  # not dropped quietly beside a size that works


def test_a_count_above_the_training_split_trains_on_all_of_it_and_says_so():
    with pytest.warns(CurveSizeWarning, match=r"sizes: 5000 is more than the 3592 training documents"):
        assert curve_sizes([250, 5000.0], 3592) == [250, 3592]


def test_sizes_within_the_split_pass_without_a_word():
    with warnings.catch_warnings():
        warnings.simplefilter("error", CurveSizeWarning)
        assert curve_sizes([0.5, 1.0, 250.0, 3592.0], 3592) == [250, 1796, 3592]
        assert curve_sizes([0.0003], 3592) == [1]  # 1.08 documents: one
