"""Task kinds are inferred as a user expects, can be overridden, and bad labels are
rejected with an error naming the column."""

import numpy as np
import pandas as pd
import pytest

from engine import LabelError, SpecError, TaskSpec, infer_kind
from engine.tasks import encode_task


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([True, False, True, None], "binary"),
        ([0, 1, 1, 0], "binary"),
        (["yes", "no", "no", None], "binary"),
        ([1.5, 2.0, 3.25, 4.0], "regression"),
        ([0, 1, 2, 3, 4], "regression"),
        (["a", "b", "c", "a"], "multiclass"),
    ],
)
def test_infer_kind(values, kind):
    assert infer_kind(pd.Series(values, name="y")) == kind


def test_binary_codes_follow_natural_order_and_keep_missing():
    task = encode_task(TaskSpec("y"), pd.Series(["yes", "no", None, "yes"], name="y"))
    assert task.kind == "binary"
    assert task.classes == ("no", "yes")
    np.testing.assert_array_equal(task.values[[0, 1, 3]], [1.0, 0.0, 1.0])
    assert np.isnan(task.values[2])
    assert task.n_labelled == 3


def test_mixed_types_in_a_class_label_are_one_class():
    task = encode_task(TaskSpec("y", kind="multiclass"), pd.Series([1, "1", 2, "3"], name="y"))
    assert task.classes == ("1", "2", "3")
    assert task.n_outputs == 3


def test_kind_can_be_overridden():
    series = pd.Series([0, 1, 2, 1, 0], name="grade")
    assert encode_task(TaskSpec("grade"), series).kind == "regression"
    task = encode_task(TaskSpec("grade", kind="multiclass"), series)
    assert task.kind == "multiclass"
    assert task.n_outputs == 3


def test_single_class_is_rejected_with_the_column_named():
    with pytest.raises(LabelError, match=r"'churned'.*single value") as info:
        encode_task(TaskSpec("churned"), pd.Series(["no", "no", None], name="churned"))
    assert info.value.field == "churned"


def test_constant_regression_label_is_rejected():
    with pytest.raises(LabelError, match="single value"):
        encode_task(TaskSpec("y", kind="regression"), pd.Series([2.0, 2.0, 2.0], name="y"))


def test_binary_with_three_classes_is_rejected():
    with pytest.raises(LabelError, match="3 distinct values; binary needs exactly 2"):
        encode_task(TaskSpec("y", kind="binary"), pd.Series(["a", "b", "c"], name="y"))


def test_regression_with_text_values_is_rejected():
    with pytest.raises(LabelError, match="mixes numbers and text"):
        encode_task(TaskSpec("y", kind="regression"), pd.Series([1.0, "x", "y", 2.0], name="y"))


def test_infinite_regression_label_is_rejected():
    with pytest.raises(LabelError, match="infinite"):
        encode_task(TaskSpec("y"), pd.Series([1.0, np.inf, 2.0, 3.0], name="y"))


def test_unknown_kind_is_a_spec_error():
    with pytest.raises(SpecError, match="Unknown task kind 'ordinal'"):
        TaskSpec("y", kind="ordinal")  # type: ignore[arg-type]
