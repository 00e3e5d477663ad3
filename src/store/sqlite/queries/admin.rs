//! The admins' read models (`store::admin_views`).

crate::store::admin_views::admin_queries!(sqlx::Sqlite, sqlx::SqlitePool);
