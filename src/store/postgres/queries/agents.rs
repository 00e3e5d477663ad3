//! What agents and admins read of agents (`store::agent_views`).

crate::store::agent_views::agent_queries!(sqlx::Postgres, sqlx::PgPool);
