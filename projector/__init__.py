"""Kafka → PostgreSQL materializer of the event log, its migrations and read queries."""
