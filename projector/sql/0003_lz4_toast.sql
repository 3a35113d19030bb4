-- Large values (states, snapshots, deltas, model I/O) compressed with lz4
-- instead of pglz. pglz gives up on a value whose first 1 KB compresses by
-- less than 25%, as the bench's chat histories did; lz4 tries the whole
-- value, and is faster. Only values written from now on are affected (a rebuild rewrites
-- every row). A server built without lz4 keeps pglz: nothing else changes.
DO $$
BEGIN
    ALTER TABLE threads ALTER COLUMN state_text SET COMPRESSION lz4,
                        ALTER COLUMN state SET COMPRESSION lz4,
                        ALTER COLUMN interrupt_payload SET COMPRESSION lz4;
    ALTER TABLE checkpoints ALTER COLUMN delta SET COMPRESSION lz4,
                            ALTER COLUMN snapshot SET COMPRESSION lz4,
                            ALTER COLUMN interrupt_payload SET COMPRESSION lz4,
                            ALTER COLUMN io SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 is not available on this server; projection keeps pglz';
END
$$;
