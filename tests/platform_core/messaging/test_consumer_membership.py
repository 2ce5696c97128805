"""How long a Kafka consumer group waits for a silent member, and static membership."""

from platform_core.management.commands.consume import consumer_membership


def test_a_consumer_is_given_up_after_the_short_session_timeout(settings):
    settings.KAFKA_SESSION_TIMEOUT_MS = 6000

    assert consumer_membership("") == {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1500}


def test_an_instance_id_makes_the_consumer_a_static_member(settings):
    settings.KAFKA_SESSION_TIMEOUT_MS = 3000

    membership = consumer_membership("order-fulfillment-1")

    assert membership["group.instance.id"] == "order-fulfillment-1"
    assert membership["heartbeat.interval.ms"] == 750
