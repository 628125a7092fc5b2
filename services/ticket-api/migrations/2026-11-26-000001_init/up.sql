-- Projects, members, tickets, transition history and the per-project event log.

CREATE TABLE projects (
    id           uuid PRIMARY KEY,
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description  text        CHECK (char_length(description) <= 10000),
    -- The last event sequence number allocated for this project. Bumped in the same
    -- transaction as every change, which also serialises writes to one board.
    event_seq    bigint      NOT NULL DEFAULT 0,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE project_members (
    project_id  uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    user_id     text        NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 200),
    role        text        NOT NULL CHECK (role IN ('owner', 'member', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (project_id, user_id)
);

CREATE INDEX project_members_user_idx ON project_members (user_id);

CREATE TABLE tickets (
    id           uuid PRIMARY KEY,
    project_id   uuid        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    title        text        NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    description  text        CHECK (char_length(description) <= 10000),
    status       text        NOT NULL CHECK (status IN ('BACKLOG', 'TODO', 'IN_PROGRESS',
                                 'NEEDS_FEEDBACK', 'READY_TO_RESUME', 'DONE')),
    priority     text        NOT NULL CHECK (priority IN ('LOW', 'MEDIUM', 'HIGH', 'CRITICAL')),
    labels       text[]      NOT NULL DEFAULT '{}' CHECK (array_position(labels, NULL) IS NULL),
    -- Fractional order key within (project_id, status); compared byte-wise.
    rank         text COLLATE "C" NOT NULL CHECK (rank ~ '^[0-9A-Za-z]+$'),
    version      bigint      NOT NULL DEFAULT 1,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX tickets_column_idx ON tickets (project_id, status, rank, id);

CREATE TABLE ticket_transitions (
    id            bigserial PRIMARY KEY,
    ticket_id     uuid        NOT NULL REFERENCES tickets (id) ON DELETE CASCADE,
    from_status   text        NOT NULL,
    to_status     text        NOT NULL,
    triggered_by  text        NOT NULL,
    reason        text,
    at            timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX ticket_transitions_ticket_idx ON ticket_transitions (ticket_id, id);

-- The transactional outbox and durable event log: one row per committed change, with a
-- gap-free per-project sequence. Rows outlive their project (no foreign key) so that a
-- project:deleted event can still be published and replayed.
CREATE TABLE events (
    project_id    uuid        NOT NULL,
    seq           bigint      NOT NULL,
    name          text        NOT NULL,
    payload       jsonb       NOT NULL,
    mutation_id   text,
    traceparent   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    PRIMARY KEY (project_id, seq)
);

CREATE INDEX events_unpublished_idx ON events (project_id, seq) WHERE published_at IS NULL;
