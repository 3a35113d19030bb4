"""Kafka → PostgreSQL materializer of the event log, its migrations and read queries.

    runner.Projector        the loop: poll → fold (batch.fold_batch) → commit rows + positions
    writer.BatchWriter      commits batches in order on its own thread
    store.ProjectionStore   the write side: COPY, upserts, positions, the group lock
    reader.PostgresProjectionReader   engine.projection.ProjectionReader on these tables
    migrations              append-only SQL migrations (projector/sql/NNNN_*.sql)
    rows                    Event / ThreadView <-> table rows
    faults                  named fault points (AMBER_FAULT) for crash tests
    digest                  table digests, to compare two projections row for row
"""
