-- Version 1: the projection of the events topic.
--
-- JSON-valued envelope fields are stored as the exact text that was written
-- (the hash chain is computed over that text); `threads.state` also has a
-- jsonb copy because it is queried. Times are the events' own occurred_at in
-- microseconds since the epoch: no wall-clock column, so a rebuild yields the
-- same rows byte for byte.

CREATE FUNCTION amber_us_to_timestamptz(us bigint) RETURNS timestamptz
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN us BETWEEN -62135596800000000 AND 253402300799999999
            THEN to_timestamp(us::float8 / 1e6) END;

CREATE TABLE threads (
    thread_id         text PRIMARY KEY,
    graph             text NOT NULL,
    status            text NOT NULL
        CHECK (status IN ('running', 'interrupted', 'completed', 'failed', 'cancelled')),
    head_seq          bigint NOT NULL,
    head_hash         text NOT NULL,
    state_text        text NOT NULL,
    state             jsonb,  -- NULL only if the text has no jsonb form (a \u0000 in a string)
    interrupt_id      text,
    interrupt_node    text,
    interrupt_when    text,
    interrupt_payload text,
    parent_thread_id  text,
    parent_seq        bigint,
    parent_hash       text,
    mode              text,
    integrity_error   text,
    created_at_us     bigint NOT NULL,
    updated_at_us     bigint NOT NULL,
    created_at        timestamptz GENERATED ALWAYS AS (amber_us_to_timestamptz(created_at_us)) STORED,
    updated_at        timestamptz GENERATED ALWAYS AS (amber_us_to_timestamptz(updated_at_us)) STORED
);
CREATE INDEX threads_by_update ON threads (updated_at_us DESC, thread_id DESC);
CREATE INDEX threads_by_status ON threads (status, updated_at_us DESC, thread_id DESC);
CREATE INDEX threads_by_graph ON threads (graph, updated_at_us DESC, thread_id DESC);
CREATE INDEX threads_by_parent ON threads (parent_thread_id) WHERE parent_thread_id IS NOT NULL;

-- One row per accepted event, with every envelope field: history rebuilds the exact Event.
CREATE TABLE checkpoints (
    thread_id         text NOT NULL,
    seq               bigint NOT NULL,
    event_id          text NOT NULL,
    type              text NOT NULL,
    node              text,
    occurred_at       bigint NOT NULL,
    graph_name        text NOT NULL,
    graph_fingerprint text NOT NULL,
    engine_version    text NOT NULL,
    actor             text,
    causation_id      text,
    delta             text NOT NULL,
    state_hash        text NOT NULL,
    prev_hash         text NOT NULL,
    hash              text NOT NULL,
    snapshot          text,
    interrupt_id      text,
    interrupt_node    text,
    interrupt_when    text,
    interrupt_payload text,
    route             text,
    io                text,
    error_type        text,
    error_message     text,
    error_retryable   boolean,
    error_attempts    integer,
    mode              text,
    reason            text,
    parent_thread_id  text,
    parent_seq        bigint,
    parent_hash       text,
    kafka_partition   integer NOT NULL,
    kafka_offset      bigint NOT NULL,
    PRIMARY KEY (thread_id, seq)
);
-- get_state(thread, seq) starts from the nearest snapshot at or below seq.
CREATE INDEX checkpoints_snapshots ON checkpoints (thread_id, seq) WHERE snapshot IS NOT NULL;

-- Events the acceptance rule refused: kept for audit, never applied.
CREATE TABLE rejected_events (
    LIKE checkpoints,
    rejection         text NOT NULL,  -- engine.acceptance.Rejection
    PRIMARY KEY (kafka_partition, kafka_offset)
);
CREATE INDEX rejected_events_by_thread ON rejected_events (thread_id, kafka_partition, kafka_offset);

-- Records that are not events (or cannot be stored): coordinates, bytes, why.
CREATE TABLE dead_letters (
    topic             text NOT NULL,
    kafka_partition   integer NOT NULL,
    kafka_offset      bigint NOT NULL,
    key               text,
    raw               bytea NOT NULL,
    error             text NOT NULL,
    PRIMARY KEY (topic, kafka_partition, kafka_offset)
);

-- Next offset to read, written in the same transaction as the rows it produced.
CREATE TABLE projector_positions (
    group_id          text NOT NULL,
    topic             text NOT NULL,
    kafka_partition   integer NOT NULL,
    next_offset       bigint NOT NULL,
    PRIMARY KEY (group_id, topic, kafka_partition)
);
