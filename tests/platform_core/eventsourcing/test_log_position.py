import pytest

from platform_core.eventsourcing.eventstore import LogPosition


def test_a_log_position_round_trips_through_its_text_form():
    position = LogPosition(812, 40)
    assert LogPosition.parse(str(position)) == position


@pytest.mark.parametrize(
    "text", ["", "1", "a.b", "1.2.3", "-1.2", "1.-2", "\u0663.1", " 1.2", "1.2\n"]
)
def test_anything_else_is_not_a_log_position(text):
    with pytest.raises(ValueError, match="not a log position"):
        LogPosition.parse(text)


def test_log_positions_order_by_transaction_before_position():
    assert LogPosition(5, 100) < LogPosition(6, 1)
