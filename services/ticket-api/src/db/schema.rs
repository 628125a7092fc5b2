// @generated in the format of `diesel print-schema` for the migrations in ../../migrations.

diesel::table! {
    events (project_id, seq) {
        project_id -> Uuid,
        seq -> Int8,
        name -> Text,
        payload -> Jsonb,
        mutation_id -> Nullable<Text>,
        traceparent -> Nullable<Text>,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    idempotency_keys (user_id, key) {
        user_id -> Text,
        key -> Text,
        response -> Jsonb,
        created_at -> Timestamptz,
        fingerprint -> Nullable<Text>,
    }
}

diesel::table! {
    project_members (project_id, user_id) {
        project_id -> Uuid,
        user_id -> Text,
        role -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    projects (id) {
        id -> Uuid,
        name -> Text,
        description -> Nullable<Text>,
        event_seq -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    ticket_transitions (id) {
        id -> Int8,
        ticket_id -> Uuid,
        from_status -> Text,
        to_status -> Text,
        triggered_by -> Text,
        reason -> Nullable<Text>,
        at -> Timestamptz,
    }
}

diesel::table! {
    tickets (id) {
        id -> Uuid,
        project_id -> Uuid,
        title -> Text,
        description -> Nullable<Text>,
        status -> Text,
        priority -> Text,
        labels -> Array<Text>,
        rank -> Text,
        version -> Int8,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(project_members -> projects (project_id));
diesel::joinable!(ticket_transitions -> tickets (ticket_id));
diesel::joinable!(tickets -> projects (project_id));

diesel::allow_tables_to_appear_in_same_query!(
    events,
    idempotency_keys,
    project_members,
    projects,
    ticket_transitions,
    tickets,
);
