"""The Kafka side of the service: settings shared by the relay and its tools (``settings``), and
``python -m relay.tail`` (``tail``), a read_committed consumer that prints what the topics hold."""
