-- When the projector last advanced on each partition: a resume may skip waiting
-- for a projector that is only milliseconds behind (and alive), never for one
-- that stopped. Liveness metadata, not state: a rebuild writes it afresh.
ALTER TABLE projector_positions
    ADD COLUMN committed_at timestamptz NOT NULL DEFAULT now();
