//! The facts reports are made of (`store::report_views`).

crate::store::report_views::report_queries!(sqlx::Sqlite, sqlx::SqlitePool, snapshot = None);
