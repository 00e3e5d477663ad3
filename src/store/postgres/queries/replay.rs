//! What `route replay` reads (`store::replay_views`).

crate::store::replay_views::replay_queries!(sqlx::Postgres, sqlx::PgPool);
