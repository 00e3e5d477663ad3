//! Black-box tests: the real `switchboard` binary, driven through HTTP and its CLI.

mod access;
mod admin_console;
mod agents;
mod browser;
mod cli;
mod console;
mod contacts;
mod delivery;
mod door;
mod email;
mod harness;
mod ingest;
mod labels;
mod languages;
mod mentions;
mod metrics;
mod migrate;
mod postgres;
mod privacy;
mod replay;
mod reports_console;
mod saved_replies;
mod sessions;
mod stream;
mod subscriptions;
mod telegram;
