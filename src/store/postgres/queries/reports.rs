//! The facts reports are made of (`store::report_views`).

crate::store::report_views::report_queries!(
    sqlx::Postgres,
    sqlx::PgPool,
    snapshot = Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
);
